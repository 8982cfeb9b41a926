use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tidechat_domain::Limits;
use tidechat_engine::LimitsPatch;
use tidechat_store::UsageGroup;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AdminAuth, Auth};
use crate::dto::timestamp;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// Limits and quotas. `null` means "not set here": a key falls back to its
/// organization, an organization to the server defaults (100 requests per
/// minute, 50 concurrent streams, no quotas). Quotas count input + output
/// tokens and cost of replies per calendar month (UTC).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsDto {
    pub requests_per_minute: Option<i64>,
    /// Organizations only: open streams and WebSocket connections.
    pub max_concurrent_streams: Option<i64>,
    pub monthly_tokens: Option<i64>,
    /// In millionths of a US dollar.
    pub monthly_cost_usd_micros: Option<i64>,
}

impl From<Limits> for LimitsDto {
    fn from(l: Limits) -> Self {
        Self {
            requests_per_minute: l.requests_per_minute,
            max_concurrent_streams: l.max_concurrent_streams,
            monthly_tokens: l.monthly_tokens,
            monthly_cost_usd_micros: l.monthly_cost_usd_micros,
        }
    }
}

impl From<LimitsDto> for Limits {
    fn from(l: LimitsDto) -> Self {
        Self {
            requests_per_minute: l.requests_per_minute,
            max_concurrent_streams: l.max_concurrent_streams,
            monthly_tokens: l.monthly_tokens,
            monthly_cost_usd_micros: l.monthly_cost_usd_micros,
        }
    }
}

/// A partial change of limits (JSON merge patch): an absent field is kept,
/// `null` unsets it, a number sets it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsPatchDto {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub requests_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_concurrent_streams: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub monthly_tokens: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub monthly_cost_usd_micros: Option<Option<i64>>,
}

/// A field that is present: `null` is `Some(None)`.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

impl From<LimitsPatchDto> for LimitsPatch {
    fn from(p: LimitsPatchDto) -> Self {
        Self {
            requests_per_minute: p.requests_per_minute,
            max_concurrent_streams: p.max_concurrent_streams,
            monthly_tokens: p.monthly_tokens,
            monthly_cost_usd_micros: p.monthly_cost_usd_micros,
        }
    }
}

/// The organization's limits.
#[utoipa::path(
    get, path = "/v1/limits", tag = "limits", operation_id = "getLimits",
    responses(
        (status = 200, description = "The limits set on the organization", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_limits(state: web::Data<AppState>, Auth(who): Auth) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.get_limits(&who, None).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// Replace the organization's limits (a full replace: omitted or null fields are unset; use `PATCH` to change only some).
#[utoipa::path(
    put, path = "/v1/limits", tag = "limits", operation_id = "setLimits",
    request_body = LimitsDto,
    responses(
        (status = 200, description = "The new limits", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 422, description = "A negative value", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_limits(
    state: web::Data<AppState>,
    Auth(who): Auth,
    Json(body): Json<LimitsDto>,
) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.set_limits(&who, None, body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// Change some of the organization's limits (fields not sent are kept).
#[utoipa::path(
    patch, path = "/v1/limits", tag = "limits", operation_id = "patchLimits",
    request_body = LimitsPatchDto,
    responses(
        (status = 200, description = "The new limits", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 422, description = "A negative value, or a request rate of 0", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch_limits(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    Json(body): Json<LimitsPatchDto>,
) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.patch_limits(&who, None, body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// An API key's own limits.
#[utoipa::path(
    get, path = "/v1/limits/keys/{keyId}", tag = "limits", operation_id = "getKeyLimits",
    params(("keyId" = String, Path, description = "API key id (`key_*`)")),
    responses(
        (status = 200, description = "The limits set on the key", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_key_limits(
    state: web::Data<AppState>,
    Auth(who): Auth,
    key: web::Path<String>,
) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.get_limits(&who, Some(&key)).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// Replace an API key's own limits (`maxConcurrentStreams` is an organization limit).
#[utoipa::path(
    put, path = "/v1/limits/keys/{keyId}", tag = "limits", operation_id = "setKeyLimits",
    params(("keyId" = String, Path, description = "API key id (`key_*`)")),
    request_body = LimitsDto,
    responses(
        (status = 200, description = "The new limits", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 422, description = "A negative value, or maxConcurrentStreams on a key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_key_limits(
    state: web::Data<AppState>,
    Auth(who): Auth,
    key: web::Path<String>,
    Json(body): Json<LimitsDto>,
) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.set_limits(&who, Some(&key), body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// Change some of an API key's limits (fields not sent are kept).
#[utoipa::path(
    patch, path = "/v1/limits/keys/{keyId}", tag = "limits", operation_id = "patchKeyLimits",
    params(("keyId" = String, Path, description = "API key id (`key_*`)")),
    request_body = LimitsPatchDto,
    responses(
        (status = 200, description = "The new limits", body = LimitsDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 422, description = "A negative value, a request rate of 0, or maxConcurrentStreams on a key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch_key_limits(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    key: web::Path<String>,
    Json(body): Json<LimitsPatchDto>,
) -> Result<HttpResponse> {
    let limits = state
        .run(move |e| async move { e.patch_limits(&who, Some(&key), body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start (inclusive): RFC 3339 or `YYYY-MM-DD` (UTC). Default: the first day of this month.
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or `YYYY-MM-DD`. Default: the first day of next month.
    pub to: Option<String>,
    /// `day` (default), `model` or `apiKey`.
    pub group_by: Option<String>,
}

/// Usage of one group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageItem {
    /// The day (`YYYY-MM-DD`), model id or API key id (null: no key, e.g. operator tools).
    pub key: Option<String>,
    /// Billed replies.
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_micros: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub items: Vec<UsageItem>,
    pub total: UsageItem,
}

fn parse_time(field: &'static str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Some(t) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(Some(t.and_utc()));
    }
    Err(ApiError::validation(format!(
        "{field}: must be RFC 3339 or YYYY-MM-DD"
    )))
}

/// Usage computed from the stored replies (so it matches them to the micro-dollar).
#[utoipa::path(
    get, path = "/v1/usage", tag = "limits", operation_id = "getUsage",
    params(UsageParams),
    responses(
        (status = 200, description = "Usage by group", body = UsageResponse),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 422, description = "Bad dates or groupBy", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn usage(
    state: web::Data<AppState>,
    Auth(who): Auth,
    params: web::Query<UsageParams>,
) -> Result<HttpResponse> {
    let p = params.into_inner();
    let from = parse_time("from", p.from.as_deref())?;
    let to = parse_time("to", p.to.as_deref())?;
    let (group, name) = match p.group_by.as_deref() {
        None | Some("") | Some("day") => (UsageGroup::Day, "day"),
        Some("model") => (UsageGroup::Model, "model"),
        Some("apiKey") => (UsageGroup::ApiKey, "apiKey"),
        Some(_) => {
            return Err(ApiError::validation(
                "groupBy: must be day, model or apiKey",
            ))
        }
    };
    let report = state
        .run(move |e| async move { e.usage(&who, from, to, group).await })
        .await?;
    let mut total = UsageItem {
        key: None,
        requests: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd_micros: 0,
    };
    let items = report
        .rows
        .into_iter()
        .map(|r| {
            total.requests += r.requests;
            total.input_tokens += r.input_tokens;
            total.output_tokens += r.output_tokens;
            total.cost_usd_micros += r.cost_usd_micros;
            UsageItem {
                key: r.key,
                requests: r.requests,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cost_usd_micros: r.cost_usd_micros,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(UsageResponse {
        from: timestamp(&report.from),
        to: timestamp(&report.to),
        group_by: name.to_owned(),
        items,
        total,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/limits")
            .route(web::get().to(get_limits))
            .route(web::put().to(set_limits))
            .route(web::patch().to(patch_limits)),
    )
    .service(
        web::resource("/v1/limits/keys/{keyId}")
            .route(web::get().to(get_key_limits))
            .route(web::put().to(set_key_limits))
            .route(web::patch().to(patch_key_limits)),
    )
    .service(web::resource("/v1/usage").route(web::get().to(usage)));
}
