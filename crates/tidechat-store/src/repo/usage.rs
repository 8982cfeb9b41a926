//! Usage: billed replies and other billed calls, totalled and grouped.

use super::prelude::*;

/// Tokens (input + output) and cost of the billed replies of the
/// organization — or of one of its keys — created at or after `since`.
pub async fn usage_since(
    c: &mut Conn<'_>,
    org: &OrgId,
    key: Option<&ApiKeyId>,
    since: DateTime<Utc>,
) -> Result<(i64, i64), StoreError> {
    let since = to_db_ts(since);
    let key = key.map(|k| k.as_str().to_owned());
    let (pg, sqlite) = (
        // Replies plus other usage (embedding calls), see `usage_events`.
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
         CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM ( \
         SELECT input_tokens + output_tokens AS tokens, cost_usd_micros AS cost FROM messages \
         WHERE org_id = $1 AND role = 'assistant' AND created_at >= $2 AND ($3::TEXT IS NULL OR api_key_id = $3) \
         UNION ALL SELECT input_tokens, cost_usd_micros FROM usage_events \
         WHERE org_id = $1 AND created_at >= $2 AND ($3::TEXT IS NULL OR api_key_id = $3)) AS u",
        "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
         CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM ( \
         SELECT input_tokens + output_tokens AS tokens, cost_usd_micros AS cost FROM messages \
         WHERE org_id = ?1 AND role = 'assistant' AND created_at >= ?2 AND (?3 IS NULL OR api_key_id = ?3) \
         UNION ALL SELECT input_tokens, cost_usd_micros FROM usage_events \
         WHERE org_id = ?1 AND created_at >= ?2 AND (?3 IS NULL OR api_key_id = ?3)) AS u",
    );
    let sql = if c.backend() == crate::Backend::Postgres {
        pg
    } else {
        sqlite
    };
    let row: UsageTotalsRow = on!(c, conn => {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(org.as_str())
            .bind::<Timestamp, _>(since)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(key.as_deref())
            .get_result(conn)
            .await?
    });
    Ok((row.tokens, row.cost))
}

/// Billed replies of the organization created in `[from, to)`, grouped.
pub async fn usage(
    c: &mut Conn<'_>,
    org: &OrgId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: crate::UsageGroup,
) -> Result<Vec<crate::UsageRow>, StoreError> {
    let postgres = c.backend() == crate::Backend::Postgres;
    let key = match (group, postgres) {
        (crate::UsageGroup::Day, true) => "to_char(created_at, 'YYYY-MM-DD')",
        (crate::UsageGroup::Day, false) => "substr(created_at, 1, 10)",
        (crate::UsageGroup::Model, _) => "model",
        (crate::UsageGroup::ApiKey, _) => "api_key_id",
    };
    let (o, f, t) = if postgres {
        ("$1", "$2", "$3")
    } else {
        ("?1", "?2", "?3")
    };
    // Replies plus other usage (embedding calls: a request each, input
    // tokens only).
    let sql = format!(
        "SELECT {key} AS key, COUNT(*) AS requests, \
         CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(cost_usd_micros), 0) AS BIGINT) AS cost_usd_micros \
         FROM (SELECT created_at, model, api_key_id, input_tokens, output_tokens, cost_usd_micros \
         FROM messages WHERE org_id = {o} AND role = 'assistant' \
         AND created_at >= {f} AND created_at < {t} \
         UNION ALL SELECT created_at, model, api_key_id, input_tokens, 0, cost_usd_micros \
         FROM usage_events WHERE org_id = {o} \
         AND created_at >= {f} AND created_at < {t}) AS u GROUP BY 1 ORDER BY 1"
    );
    let (from, to) = (to_db_ts(from), to_db_ts(to));
    let rows: Vec<UsageGroupRow> = on!(c, conn => {
        diesel::sql_query(&sql)
            .bind::<diesel::sql_types::Text, _>(org.as_str())
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(conn)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| crate::UsageRow {
            key: r.key,
            requests: r.requests,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd_micros: r.cost_usd_micros,
        })
        .collect())
}

impl Store {
    pub async fn usage_since(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        self.read(async move |c| usage_since(c, org, key, since).await)
            .await
    }

    pub async fn usage(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group: crate::UsageGroup,
    ) -> Result<Vec<crate::UsageRow>, StoreError> {
        self.read(async move |c| usage(c, org, from, to, group).await)
            .await
    }
}

#[derive(QueryableByName)]
pub(super) struct UsageTotalsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(super) tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(super) cost: i64,
}

#[derive(QueryableByName)]
struct UsageGroupRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    requests: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    input_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    output_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cost_usd_micros: i64,
}
