//! Per-model prices and cost computation.

use crate::model::Usage;

/// Price of a model in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pricing {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

/// Prices are taken to 1e-9 USD per million tokens (finer is meaningless);
/// with that fixed-point scale the cost computation is exact integer math.
const PRICE_SCALE: u128 = 1_000_000_000;

fn price_units(usd_per_mtok: f64) -> u128 {
    // `max` maps NaN to 0; the float-to-int cast saturates at u128::MAX.
    (usd_per_mtok * PRICE_SCALE as f64).round().max(0.0) as u128
}

impl Pricing {
    pub const FREE: Pricing = Pricing {
        input_usd_per_mtok: 0.0,
        output_usd_per_mtok: 0.0,
    };

    pub const fn new(input_usd_per_mtok: f64, output_usd_per_mtok: f64) -> Self {
        Self {
            input_usd_per_mtok,
            output_usd_per_mtok,
        }
    }

    /// Cost of `usage` in micro-dollars (1e-6 USD).
    ///
    /// One token at `p` USD per million tokens costs exactly `p` micro-dollars,
    /// so the cost is `input_tokens * input_price + output_tokens *
    /// output_price`, computed in fixed point (see above), rounded half up,
    /// never negative (negative or NaN prices count as 0) and saturating at
    /// `i64::MAX`.
    pub fn cost_usd_micros(&self, usage: &Usage) -> i64 {
        let input =
            u128::from(usage.input_tokens).saturating_mul(price_units(self.input_usd_per_mtok));
        let output =
            u128::from(usage.output_tokens).saturating_mul(price_units(self.output_usd_per_mtok));
        let total = input.saturating_add(output);
        let micros = total.saturating_add(PRICE_SCALE / 2) / PRICE_SCALE;
        i64::try_from(micros).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            estimated: false,
        }
    }

    #[test]
    fn free_costs_nothing() {
        assert_eq!(
            Pricing::FREE.cost_usd_micros(&usage(1_000_000, 1_000_000)),
            0
        );
    }

    #[test]
    fn one_million_tokens_cost_the_list_price() {
        let p = Pricing::new(2.5, 10.0);
        assert_eq!(p.cost_usd_micros(&usage(1_000_000, 0)), 2_500_000);
        assert_eq!(p.cost_usd_micros(&usage(0, 1_000_000)), 10_000_000);
        assert_eq!(p.cost_usd_micros(&usage(1_000, 500)), 2_500 + 5_000);
    }

    #[test]
    fn rounds_half_up() {
        let p = Pricing::new(0.5, 0.0);
        assert_eq!(p.cost_usd_micros(&usage(1, 0)), 1); // 0.5 -> 1
        let p = Pricing::new(0.4, 0.0);
        assert_eq!(p.cost_usd_micros(&usage(1, 0)), 0); // 0.4 -> 0
                                                        // 0.1 and 0.3 are not exact in binary floating point; fixed point is.
        let p = Pricing::new(0.1, 0.0);
        assert_eq!(p.cost_usd_micros(&usage(5, 0)), 1); // 0.5 -> 1
        assert_eq!(p.cost_usd_micros(&usage(3, 0)), 0); // 0.3 -> 0
        let p = Pricing::new(0.3, 0.0);
        assert_eq!(p.cost_usd_micros(&usage(15, 0)), 5); // 4.5 -> 5
        let p = Pricing::new(0.15, 0.6);
        assert_eq!(p.cost_usd_micros(&usage(10, 10)), 8); // 1.5 + 6 = 7.5 -> 8
    }

    #[test]
    fn never_negative_and_saturates() {
        let p = Pricing::new(-3.0, f64::NAN);
        assert_eq!(p.cost_usd_micros(&usage(1_000, 1_000)), 0);
        let p = Pricing::new(f64::MAX, f64::INFINITY);
        assert_eq!(p.cost_usd_micros(&usage(u64::MAX, u64::MAX)), i64::MAX);
        let p = Pricing::new(1_000.0, 0.0);
        assert_eq!(p.cost_usd_micros(&usage(u64::MAX, 0)), i64::MAX);
    }
}
