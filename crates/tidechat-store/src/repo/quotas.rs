//! Quota reservations: what running turns may still spend.
//!
//! A turn is admitted against the monthly quotas of its organization and of
//! its billed key by [`reserve_quota`], which — serialised per organization
//! (PostgreSQL: a transaction-scoped advisory lock; SQLite: the write
//! transaction itself) — adds what was already spent this month to what
//! running turns hold, refuses the turn when that plus the turn's input
//! would pass a quota, and otherwise records a hold of the turn's input plus
//! its `maxOutputTokens`. The turn releases the hold once its reply (and
//! its usage) is stored; a hold whose process died expires.
//!
//! The bound: the turns admitted together cannot pass a quota by more than
//! the output of the last one admitted (its `maxOutputTokens`), since every
//! earlier one's whole hold was counted when it was admitted.

use chrono::NaiveDateTime;

use super::prelude::*;

/// A quota a turn is checked against: the organization's (`key: None`) or
/// the billed key's. `None` limits are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLimit {
    pub key: Option<ApiKeyId>,
    pub monthly_tokens: Option<i64>,
    pub monthly_cost_usd_micros: Option<i64>,
}

/// What a turn asks to reserve.
#[derive(Debug, Clone)]
pub struct QuotaClaim<'a> {
    pub org: &'a OrgId,
    /// The key the turn is billed to (recorded on the hold).
    pub billing_key: Option<&'a ApiKeyId>,
    pub limits: &'a [QuotaLimit],
    /// Usage counts from here (the month's start).
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// When the hold lapses if it is never released.
    pub expires_at: DateTime<Utc>,
    /// Spent as soon as the turn runs: its input.
    pub need_tokens: i64,
    pub need_cost_usd_micros: i64,
    /// Held while it runs: input plus `maxOutputTokens`.
    pub hold_tokens: i64,
    pub hold_cost_usd_micros: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    Tokens,
    CostUsdMicros,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Admitted; release the hold with [`release_quota`].
    Reserved { id: String },
    /// `limits[limit]` would be passed: `committed` is spent plus held by
    /// running turns.
    Refused {
        limit: usize,
        kind: QuotaKind,
        quota: i64,
        committed: i64,
    },
}

/// Checks `claim` against its quotas and holds its share (see the module
/// documentation). Runs its statements in order: call it inside
/// [`Store::transaction`] (the `Store` method does).
pub async fn reserve_quota(
    c: &mut Conn<'_>,
    claim: &QuotaClaim<'_>,
) -> Result<QuotaDecision, StoreError> {
    if c.backend() == crate::Backend::Postgres {
        on!(c, conn => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(claim.org.as_str())
                .execute(conn)
                .await?;
        });
    }
    let now = to_db_ts(claim.now);
    on!(c, conn => {
        diesel::delete(
            quota_reservations::table
                .filter(quota_reservations::org_id.eq(claim.org.as_str()))
                .filter(quota_reservations::expires_at.le(now)),
        )
        .execute(conn)
        .await?;
    });
    for (index, limit) in claim.limits.iter().enumerate() {
        if limit.monthly_tokens.is_none() && limit.monthly_cost_usd_micros.is_none() {
            continue;
        }
        let (spent_tokens, spent_cost) =
            super::usage::usage_since(c, claim.org, limit.key.as_ref(), claim.since).await?;
        let (held_tokens, held_cost) = held(c, claim.org, limit.key.as_ref()).await?;
        let checks = [
            (
                QuotaKind::Tokens,
                limit.monthly_tokens,
                spent_tokens.saturating_add(held_tokens),
                claim.need_tokens,
            ),
            (
                QuotaKind::CostUsdMicros,
                limit.monthly_cost_usd_micros,
                spent_cost.saturating_add(held_cost),
                claim.need_cost_usd_micros,
            ),
        ];
        for (kind, quota, committed, need) in checks {
            let Some(quota) = quota else { continue };
            if committed >= quota || committed.saturating_add(need) > quota {
                return Ok(QuotaDecision::Refused {
                    limit: index,
                    kind,
                    quota,
                    committed,
                });
            }
        }
    }
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let row = QuotaReservationRow {
        id: id.clone(),
        org_id: claim.org.as_str().to_owned(),
        api_key_id: claim.billing_key.map(|k| k.as_str().to_owned()),
        tokens: claim.hold_tokens,
        cost_usd_micros: claim.hold_cost_usd_micros,
        created_at: now,
        expires_at: to_db_ts(claim.expires_at),
    };
    on!(c, conn => {
        diesel::insert_into(quota_reservations::table)
            .values(&row)
            .execute(conn)
            .await?;
    });
    Ok(QuotaDecision::Reserved { id })
}

/// What the running turns of the organization (or of one key) hold.
async fn held(
    c: &mut Conn<'_>,
    org: &OrgId,
    key: Option<&ApiKeyId>,
) -> Result<(i64, i64), StoreError> {
    let sql = if c.backend() == crate::Backend::Postgres {
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
         CAST(COALESCE(SUM(cost_usd_micros), 0) AS BIGINT) AS cost \
         FROM quota_reservations WHERE org_id = $1 AND ($2::TEXT IS NULL OR api_key_id = $2)"
    } else {
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
         CAST(COALESCE(SUM(cost_usd_micros), 0) AS BIGINT) AS cost \
         FROM quota_reservations WHERE org_id = ?1 AND (?2 IS NULL OR api_key_id = ?2)"
    };
    let key = key.map(|k| k.as_str().to_owned());
    let row: super::usage::UsageTotalsRow = on!(c, conn => {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(org.as_str())
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(key.as_deref())
            .get_result(conn)
            .await?
    });
    Ok((row.tokens, row.cost))
}

/// Ends a hold (idempotent: an expired or released hold is no error).
pub async fn release_quota(c: &mut Conn<'_>, id: &str) -> Result<(), StoreError> {
    on!(c, conn => {
        diesel::delete(quota_reservations::table.filter(quota_reservations::id.eq(id)))
            .execute(conn)
            .await?;
    });
    Ok(())
}

/// Holds currently recorded for the organization (expired ones included
/// until the next reservation sweeps them).
pub async fn count_quota_holds(c: &mut Conn<'_>, org: &OrgId) -> Result<i64, StoreError> {
    Ok(on!(c, conn => {
        quota_reservations::table
            .filter(quota_reservations::org_id.eq(org.as_str()))
            .count()
            .get_result::<i64>(conn)
            .await?
    }))
}

impl Store {
    pub async fn reserve_quota(&self, claim: &QuotaClaim<'_>) -> Result<QuotaDecision, StoreError> {
        self.transaction(async move |c| reserve_quota(c, claim).await)
            .await
    }

    pub async fn release_quota(&self, id: &str) -> Result<(), StoreError> {
        self.transaction(async move |c| release_quota(c, id).await)
            .await
    }

    pub async fn count_quota_holds(&self, org: &OrgId) -> Result<i64, StoreError> {
        self.read(async move |c| count_quota_holds(c, org).await)
            .await
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = quota_reservations)]
struct QuotaReservationRow {
    id: String,
    org_id: String,
    api_key_id: Option<String>,
    tokens: i64,
    cost_usd_micros: i64,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}
