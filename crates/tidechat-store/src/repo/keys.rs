//! API keys (with the limits read alongside them) and WebSocket tickets.

use super::prelude::*;

/// The limit columns read with an API key (from two aliases of `limits`).
const LIMIT_COLUMNS: (
    limits::requests_per_minute,
    limits::max_concurrent_streams,
    limits::monthly_tokens,
    limits::monthly_cost_usd_micros,
) = (
    limits::requests_per_minute,
    limits::max_concurrent_streams,
    limits::monthly_tokens,
    limits::monthly_cost_usd_micros,
);

/// Stores a key (only its hash). The key's workspace must belong to the
/// key's organization.
pub async fn insert_api_key(
    c: &mut Conn<'_>,
    key: &ApiKey,
    key_hash: &str,
) -> Result<(), StoreError> {
    let row = NewApiKeyRow::from_domain(key, key_hash);
    super::orgs::workspace_in_org(c, &row.org_id, &row.workspace_id).await?;
    on!(c, conn => scope(async {
        diesel::insert_into(api_keys::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

/// The key with this hash, revoked or not (check `revoked_at`), together
/// with the limits set on its organization and on the key itself, in one
/// statement: every request authenticated by key needs all three (rate
/// limits, quotas).
pub async fn find_api_key_with_limits(
    c: &mut Conn<'_>,
    key_hash: &str,
) -> Result<Option<(ApiKey, LimitsPair)>, StoreError> {
    let (org_l, key_l) = diesel::alias!(limits as org_l, limits as key_l);
    type Cols = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let row: Option<(ApiKeyRow, Option<Cols>, Option<Cols>)> = on!(c, conn => {
        api_keys::table
            .left_join(
                org_l.on(org_l
                    .field(limits::org_id)
                    .eq(api_keys::org_id)
                    .and(org_l.field(limits::api_key_id).eq(""))),
            )
            .left_join(
                key_l.on(key_l
                    .field(limits::org_id)
                    .eq(api_keys::org_id)
                    .and(key_l.field(limits::api_key_id).eq(api_keys::id))),
            )
            .filter(api_keys::key_hash.eq(key_hash))
            .select((
                ApiKeyRow::as_select(),
                org_l
                    .fields(LIMIT_COLUMNS)
                    .nullable(),
                key_l
                    .fields(LIMIT_COLUMNS)
                    .nullable(),
            ))
            .first(conn)
            .await
            .optional()?
    });
    let limits = |c: Option<Cols>| {
        c.map(|(rpm, streams, tokens, cost)| tidechat_domain::Limits {
            requests_per_minute: rpm,
            max_concurrent_streams: streams,
            monthly_tokens: tokens,
            monthly_cost_usd_micros: cost,
        })
        .unwrap_or_default()
    };
    Ok(row.map(|(key, org, own)| {
        (
            key.into_domain(),
            LimitsPair {
                org: limits(org),
                key: limits(own),
            },
        )
    }))
}

/// One key of the organization (revoked ones too).
pub async fn get_api_key(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &ApiKeyId,
) -> Result<Option<ApiKey>, StoreError> {
    let row: Option<ApiKeyRow> = on!(c, conn => {
        api_keys::table
            .filter(api_keys::id.eq(id.as_str()))
            .filter(api_keys::org_id.eq(org.as_str()))
            .select(ApiKeyRow::as_select())
            .first(conn)
            .await
            .optional()?
    });
    Ok(row.map(ApiKeyRow::into_domain))
}

pub async fn list_api_keys(c: &mut Conn<'_>, org: &OrgId) -> Result<Vec<ApiKey>, StoreError> {
    let rows: Vec<ApiKeyRow> = on!(c, conn => {
        api_keys::table
            .filter(api_keys::org_id.eq(org.as_str()))
            .order((api_keys::created_at.desc(), api_keys::id.desc()))
            .select(ApiKeyRow::as_select())
            .load(conn)
            .await?
    });
    Ok(rows.into_iter().map(ApiKeyRow::into_domain).collect())
}

/// Revokes a key; idempotent (a second call keeps the first
/// `revoked_at`). `Ok(None)` when the key is not in the organization.
pub async fn revoke_api_key(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &ApiKeyId,
    at: DateTime<Utc>,
) -> Result<Option<ApiKey>, StoreError> {
    let at = to_db_ts(at);
    let row: Option<ApiKeyRow> = on!(c, conn => scope(async {
        diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(id.as_str()))
                .filter(api_keys::org_id.eq(org.as_str()))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(at)))
        .execute(conn)
        .await?;
        Ok(api_keys::table
            .filter(api_keys::id.eq(id.as_str()))
            .filter(api_keys::org_id.eq(org.as_str()))
            .select(ApiKeyRow::as_select())
            .first(conn)
            .await
            .optional()?)
    }).await)?;
    Ok(row.map(ApiKeyRow::into_domain))
}

/// Stores a WebSocket ticket (its hash) for the organization's key.
pub async fn create_ws_ticket(
    c: &mut Conn<'_>,
    ticket_hash: &str,
    org: &OrgId,
    key: &ApiKeyId,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (hash, org, key, expires) = (
        ticket_hash.to_owned(),
        org.as_str().to_owned(),
        key.as_str().to_owned(),
        to_db_ts(expires_at),
    );
    on!(c, conn => scope(async {
        diesel::insert_into(ws_tickets::table)
            .values((
                ws_tickets::ticket_hash.eq(&hash),
                ws_tickets::org_id.eq(&org),
                ws_tickets::api_key_id.eq(&key),
                ws_tickets::expires_at.eq(expires),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }).await)
}

/// Uses a ticket: returns its organization and key if it exists, has not
/// expired and was not used before (atomically: a ticket opens one
/// connection).
pub async fn redeem_ws_ticket(
    c: &mut Conn<'_>,
    ticket_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(OrgId, ApiKeyId)>, StoreError> {
    let now = to_db_ts(now);
    let hash = ticket_hash.to_owned();
    let found: Option<(String, String)> = on!(c, conn => scope(async {
        let used = diesel::update(ws_tickets::table)
            .filter(ws_tickets::ticket_hash.eq(&hash))
            .filter(ws_tickets::used_at.is_null())
            .filter(ws_tickets::expires_at.gt(now))
            .set(ws_tickets::used_at.eq(Some(now)))
            .execute(conn)
            .await?;
        if used == 0 {
            return Ok(None);
        }
        Ok(ws_tickets::table
            .filter(ws_tickets::ticket_hash.eq(&hash))
            .select((ws_tickets::org_id, ws_tickets::api_key_id))
            .first(conn)
            .await
            .optional()?)
    }).await)?;
    Ok(found.map(|(org, key)| (OrgId::from_trusted(org), ApiKeyId::from_trusted(key))))
}

impl Store {
    pub async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_api_key(c, key, key_hash).await)
            .await
    }

    pub async fn find_api_key_with_limits(
        &self,
        key_hash: &str,
    ) -> Result<Option<(ApiKey, LimitsPair)>, StoreError> {
        self.read(async move |c| find_api_key_with_limits(c, key_hash).await)
            .await
    }

    pub async fn get_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.read(async move |c| get_api_key(c, org, id).await)
            .await
    }

    pub async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>, StoreError> {
        self.read(async move |c| list_api_keys(c, org).await).await
    }

    pub async fn revoke_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.transaction(async move |c| revoke_api_key(c, org, id, at).await)
            .await
    }

    pub async fn create_ws_ticket(
        &self,
        ticket_hash: &str,
        org: &OrgId,
        key: &ApiKeyId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.transaction(async move |c| {
            create_ws_ticket(c, ticket_hash, org, key, expires_at).await
        })
        .await
    }

    pub async fn redeem_ws_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(OrgId, ApiKeyId)>, StoreError> {
        self.transaction(async move |c| redeem_ws_ticket(c, ticket_hash, now).await)
            .await
    }
}
