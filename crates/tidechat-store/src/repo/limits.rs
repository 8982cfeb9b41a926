//! Limits set on an organization or one of its keys.

use super::prelude::*;

/// The limits set on the organization (`key` = None) or on one of its
/// keys; all `None` when nothing is set.
pub async fn get_limits(
    c: &mut Conn<'_>,
    org: &OrgId,
    key: Option<&ApiKeyId>,
) -> Result<tidechat_domain::Limits, StoreError> {
    let key = key.map(ApiKeyId::as_str).unwrap_or_default();
    let row: Option<LimitsRow> = on!(c, conn => {
        limits::table
            .filter(limits::org_id.eq(org.as_str()))
            .filter(limits::api_key_id.eq(key))
            .select(LimitsRow::as_select())
            .first(conn)
            .await
            .optional()?
    });
    Ok(row.map(LimitsRow::into_domain).unwrap_or_default())
}

/// Replaces the limits of the organization or of one of its keys. A key
/// of another organization is `Ok(false)`.
pub async fn set_limits(
    c: &mut Conn<'_>,
    org: &OrgId,
    key: Option<&ApiKeyId>,
    value: &tidechat_domain::Limits,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = LimitsRow {
        org_id: org.as_str().to_owned(),
        api_key_id: key.map(ApiKeyId::as_str).unwrap_or_default().to_owned(),
        requests_per_minute: value.requests_per_minute,
        max_concurrent_streams: value.max_concurrent_streams,
        monthly_tokens: value.monthly_tokens,
        monthly_cost_usd_micros: value.monthly_cost_usd_micros,
        updated_at: to_db_ts(at),
    };
    on!(c, conn => scope(async {
        if let Some(key) = key {
            let owned: i64 = api_keys::table
                .filter(api_keys::id.eq(key.as_str()))
                .filter(api_keys::org_id.eq(org.as_str()))
                .count()
                .get_result(conn)
                .await?;
            if owned == 0 {
                return Ok(false);
            }
        }
        diesel::insert_into(limits::table)
            .values(&row)
            .on_conflict((limits::org_id, limits::api_key_id))
            .do_update()
            .set(&row)
            .execute(conn)
            .await?;
        Ok(true)
    }).await)
}

impl Store {
    pub async fn get_limits(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
    ) -> Result<tidechat_domain::Limits, StoreError> {
        self.read(async move |c| get_limits(c, org, key).await)
            .await
    }

    pub async fn set_limits(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
        value: &tidechat_domain::Limits,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| set_limits(c, org, key, value, at).await)
            .await
    }
}
