//! Limits, quotas and usage. Request rates and concurrent streams are
//! enforced by the transport with `tidechat-limits`; this module says what
//! the limits are, refuses turns when a monthly quota is spent, and reports
//! usage from the stored messages.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use tidechat_domain::{ApiKeyId, Limits, LimitsPair, OrgId};
use tidechat_llm::{tokens, Usage};
use tidechat_store::{
    QuotaClaim, QuotaDecision, QuotaKind, QuotaLimit, Store, UsageGroup, UsageRow,
};

use crate::auth::Principal;
use crate::turn::Prepared;
use crate::{Engine, EngineError};

/// The limits that apply to one caller, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub org_requests_per_minute: u32,
    /// Set only when the key has its own rate.
    pub key_requests_per_minute: Option<u32>,
    pub max_concurrent_streams: u32,
}

/// A usage report.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<UsageRow>,
}

fn positive(field: &'static str, value: Option<i64>) -> Result<(), EngineError> {
    match value {
        Some(v) if v < 0 => Err(EngineError::validation(
            field,
            "must be 0 or more (or null for no limit)",
        )),
        _ => Ok(()),
    }
}

/// A request rate of 0 would refuse every request, including the one that
/// raises it again: at least 1 (or null for the default).
fn at_least_one(field: &'static str, value: Option<i64>) -> Result<(), EngineError> {
    match value {
        Some(v) if v < 1 => Err(EngineError::validation(
            field,
            "must be 1 or more (0 would refuse every request, including the one that changes it back); null for the default",
        )),
        _ => Ok(()),
    }
}

/// A partial change of limits: `None` keeps a field, `Some(None)` unsets it,
/// `Some(Some(v))` sets it (JSON merge-patch semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub requests_per_minute: Option<Option<i64>>,
    pub max_concurrent_streams: Option<Option<i64>>,
    pub monthly_tokens: Option<Option<i64>>,
    pub monthly_cost_usd_micros: Option<Option<i64>>,
}

impl LimitsPatch {
    pub fn apply(&self, mut limits: Limits) -> Limits {
        let set = |field: &mut Option<i64>, change: Option<Option<i64>>| {
            if let Some(value) = change {
                *field = value;
            }
        };
        set(&mut limits.requests_per_minute, self.requests_per_minute);
        set(
            &mut limits.max_concurrent_streams,
            self.max_concurrent_streams,
        );
        set(&mut limits.monthly_tokens, self.monthly_tokens);
        set(
            &mut limits.monthly_cost_usd_micros,
            self.monthly_cost_usd_micros,
        );
        limits
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The first instant of the calendar month (UTC) containing `now`, and of the next one.
pub fn month_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (start, next)
}

impl Engine {
    /// The request-rate and stream limits of a caller.
    pub async fn effective_limits(&self, who: &Principal) -> Result<EffectiveLimits, EngineError> {
        Ok(self.effective_limits_of(self.limits_pair(who).await?))
    }

    /// The limits in force for a caller whose [`LimitsPair`] is known.
    pub fn effective_limits_of(&self, LimitsPair { org, key }: LimitsPair) -> EffectiveLimits {
        let config = &self.inner.config;
        EffectiveLimits {
            org_requests_per_minute: org
                .requests_per_minute
                .map(clamp_u32)
                .unwrap_or(config.default_requests_per_minute),
            key_requests_per_minute: key.requests_per_minute.map(clamp_u32),
            max_concurrent_streams: org
                .max_concurrent_streams
                .map(clamp_u32)
                .unwrap_or(config.default_max_concurrent_streams),
        }
    }

    /// The limits of the caller's organization and billed key: read with the
    /// credential when it was an API key, else from the store.
    pub(crate) async fn limits_pair(&self, who: &Principal) -> Result<LimitsPair, EngineError> {
        if let Some(pair) = who.limits {
            return Ok(pair);
        }
        let store = &self.inner.store;
        Ok(LimitsPair {
            org: store.get_limits(&who.org_id, None).await?,
            key: match &who.billing_key {
                Some(k) => store.get_limits(&who.org_id, Some(k)).await?,
                None => Limits::default(),
            },
        })
    }

    /// Admits a prepared turn against the monthly quotas of the
    /// organization and of the billed key, holding the turn's input plus
    /// its `maxOutputTokens` (and their cost at the model's prices) until the
    /// turn's reply is stored, so that concurrent turns see each other. A
    /// turn is refused when what is spent plus what running turns hold has
    /// reached a quota, or would pass it with this turn's input. Turns
    /// admitted together therefore pass a token quota by at most one turn's
    /// `maxOutputTokens` (per model round: a tool-using turn's further rounds
    /// are not held). Callers without quotas pay nothing (no hold, no query
    /// beyond the limits the credential already carries).
    pub(crate) async fn reserve_quota(
        &self,
        who: &Principal,
        prepared: &mut Prepared,
    ) -> Result<(), EngineError> {
        let pair = self.limits_pair(who).await?;
        let mut limits = vec![QuotaLimit {
            key: None,
            monthly_tokens: pair.org.monthly_tokens,
            monthly_cost_usd_micros: pair.org.monthly_cost_usd_micros,
        }];
        if let Some(key) = &who.billing_key {
            limits.push(QuotaLimit {
                key: Some(key.clone()),
                monthly_tokens: pair.key.monthly_tokens,
                monthly_cost_usd_micros: pair.key.monthly_cost_usd_micros,
            });
        }
        if limits
            .iter()
            .all(|l| l.monthly_tokens.is_none() && l.monthly_cost_usd_micros.is_none())
        {
            return Ok(());
        }
        let input = tokens::count_messages(&prepared.request.messages);
        let output = u64::from(prepared.request.max_output_tokens);
        let pricing = prepared.model.pricing;
        let cost = |input_tokens, output_tokens| {
            pricing.cost_usd_micros(&Usage {
                input_tokens,
                output_tokens,
                estimated: true,
            })
        };
        let now = Utc::now();
        let (month, next_month) = month_bounds(now);
        let claim = QuotaClaim {
            org: &who.org_id,
            billing_key: who.billing_key.as_ref(),
            limits: &limits,
            since: month,
            now,
            expires_at: now + QUOTA_HOLD_TTL,
            need_tokens: i64::try_from(input).unwrap_or(i64::MAX),
            need_cost_usd_micros: cost(input, 0),
            hold_tokens: i64::try_from(input.saturating_add(output)).unwrap_or(i64::MAX),
            hold_cost_usd_micros: cost(input, output),
        };
        let store = &self.inner.store;
        match store.reserve_quota(&claim).await? {
            QuotaDecision::Reserved { id } => {
                prepared.quota = Some(QuotaHold {
                    store: store.clone(),
                    id: Some(id),
                });
                Ok(())
            }
            QuotaDecision::Refused {
                limit,
                kind,
                quota,
                committed,
            } => {
                let what = if limits[limit].key.is_some() {
                    "API key"
                } else {
                    "organization"
                };
                let amount = match kind {
                    QuotaKind::Tokens => format!("token quota ({quota} tokens)"),
                    QuotaKind::CostUsdMicros => {
                        format!("cost quota (${:.2})", quota as f64 / 1_000_000.0)
                    }
                };
                let state = if committed >= quota {
                    "is spent (counting the turns still running)"
                } else {
                    "has too little left for this turn's input"
                };
                Err(EngineError::QuotaExceeded {
                    message: format!("the {what}'s monthly {amount} {state}"),
                    retry_after_secs: u64::try_from((next_month - now).num_seconds().max(1))
                        .unwrap_or(1),
                })
            }
        }
    }

    fn limits_key(&self, key: Option<&str>) -> Result<Option<ApiKeyId>, EngineError> {
        key.map(|k| ApiKeyId::parse(k).map_err(|_| EngineError::NotFound("api key")))
            .transpose()
    }

    /// The limits set on the organization, or on one of its keys.
    pub async fn get_limits(
        &self,
        who: &Principal,
        key: Option<&str>,
    ) -> Result<Limits, EngineError> {
        who.require_admin()?;
        let key = self.limits_key(key)?;
        if let Some(k) = &key {
            self.inner
                .store
                .get_api_key(&who.org_id, k)
                .await?
                .ok_or(EngineError::NotFound("api key"))?;
        }
        Ok(self
            .inner
            .store
            .get_limits(&who.org_id, key.as_ref())
            .await?)
    }

    /// Replaces the limits of the organization or of one of its keys.
    pub async fn set_limits(
        &self,
        who: &Principal,
        key: Option<&str>,
        limits: Limits,
    ) -> Result<Limits, EngineError> {
        who.require_admin()?;
        let key = self.limits_key(key)?;
        if key.is_some() && limits.max_concurrent_streams.is_some() {
            return Err(EngineError::validation(
                "maxConcurrentStreams",
                "is an organization limit; set it without a key",
            ));
        }
        self.set_limits_for(&who.org_id, key.as_ref(), limits).await
    }

    /// Changes only the fields `patch` names, keeping the others. (Read,
    /// merge, write: two admins patching the same row at the same instant
    /// can still overwrite each other's field, as with `PUT`.)
    pub async fn patch_limits(
        &self,
        who: &Principal,
        key: Option<&str>,
        patch: LimitsPatch,
    ) -> Result<Limits, EngineError> {
        let current = self.get_limits(who, key).await?;
        self.set_limits(who, key, patch.apply(current)).await
    }

    /// Operator path (CLI): replaces an organization's or key's limits.
    pub async fn set_limits_for(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
        limits: Limits,
    ) -> Result<Limits, EngineError> {
        at_least_one("requestsPerMinute", limits.requests_per_minute)?;
        positive("maxConcurrentStreams", limits.max_concurrent_streams)?;
        positive("monthlyTokens", limits.monthly_tokens)?;
        positive("monthlyCostUsdMicros", limits.monthly_cost_usd_micros)?;
        if !self
            .inner
            .store
            .set_limits(org, key, &limits, Utc::now())
            .await?
        {
            return Err(EngineError::NotFound("api key"));
        }
        Ok(limits)
    }

    /// The organization's current limits, for the CLI.
    pub async fn org_limits(&self, org: &OrgId) -> Result<Limits, EngineError> {
        Ok(self.inner.store.get_limits(org, None).await?)
    }

    /// Usage from the stored replies in `[from, to)` (default: this month).
    pub async fn usage(
        &self,
        who: &Principal,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        group: UsageGroup,
    ) -> Result<UsageReport, EngineError> {
        who.require_admin()?;
        let (month, next_month) = month_bounds(Utc::now());
        let from = from.unwrap_or(month);
        let to = to.unwrap_or(next_month);
        if to <= from {
            return Err(EngineError::validation("to", "must be after `from`"));
        }
        let rows = self.inner.store.usage(&who.org_id, from, to, group).await?;
        Ok(UsageReport { from, to, rows })
    }
}

/// How long a quota hold lasts when its turn never releases it (its process
/// died): longer than any turn runs.
const QUOTA_HOLD_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// A running turn's hold on its quotas (see [`Engine::reserve_quota`]).
/// Dropped — when the turn has stored its reply, or failed —, it releases
/// the hold in the background.
pub(crate) struct QuotaHold {
    store: Store,
    id: Option<String>,
}

impl Drop for QuotaHold {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        // Without a runtime (process shutting down) the hold expires.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        runtime.spawn(async move {
            if let Err(e) = store.release_quota(&id).await {
                tracing::warn!(error = ?e, "could not release a quota hold; it will expire");
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_cover_december() {
        let (s, n) = month_bounds(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap());
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(n, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }
}
