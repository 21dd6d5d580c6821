//! `/keys`: creating, listing and revoking the HTTP API keys (scope
//! `admin`). A key's token is answered once, by the `POST` that creates it;
//! the database keeps only its SHA-256 (see `platform::http::auth`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use platform::http::auth::{check_key_name, IssuedKey, KeyName, Scope, Scopes};
use platform::http::{ApiJson, ApiPath};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::object_body;
use crate::error::{ApiError, ErrorBody};
use crate::query;
use crate::query::keys::{KeyCreated, KeyRecord, NewKey};
use crate::state::AppState;

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// Unique among the keys in force; the label of its metric. 1 to 64 of
    /// `a-z`, `0-9`, `_`, `.`, `-`, starting with a letter or digit; not
    /// `bootstrap`.
    #[schema(example = "dashboard", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub name: String,
    /// What the key may do; none implies another (a scope named twice counts once).
    #[schema(min_items = 1, max_items = 3)]
    pub scopes: Vec<Scope>,
    /// Requests a second this key may send to each service, and as many
    /// at once (the burst); past it, 429 `rate_limited`. None: no limit.
    // `100.0` is 100: JSON Schema's integers may be written so.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 2147483647, example = 100)]
    #[serde(default, deserialize_with = "domain::whole::option_u64")]
    pub rate_limit: Option<u64>,
}

/// A key, without its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Public: part of the token (`bk_<id>_...`), and what `DELETE /keys/{id}` takes.
    #[schema(example = "3f9a0c1b2d4e")]
    pub id: String,
    #[schema(example = "dashboard")]
    pub name: String,
    pub scopes: Vec<Scope>,
    #[schema(example = 100)]
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    /// The last request with it, as written every `auth.last_used_interval`.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key just created, with its token: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyInfo,
    /// Send it as `Authorization: Bearer <token>`. Shown once: store it now.
    #[schema(example = "bk_3f9a0c1b2d4e_8c1d...")]
    pub token: String,
}

/// The keys in force, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

impl KeyInfo {
    fn from_record(record: &KeyRecord) -> Result<Self, ApiError> {
        let scopes = Scopes::from_text(&record.scopes).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "key {} has scopes {:?}",
                record.id,
                record.scopes
            ))
        })?;
        Ok(Self {
            id: record.id.clone(),
            name: record.name.clone(),
            scopes: scopes.iter().collect(),
            rate_limit: record.rate_limit,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
        })
    }
}

/// The keys in force (not revoked), by name, without their tokens. Needs
/// scope `admin`.
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "listKeys", tag = "keys",
    responses(
        (status = 200, description = "The keys in force", body = KeyList),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<ApiJson<KeyList>, ApiError> {
    let records = query::keys::in_force(&state).await?;
    let keys = records
        .iter()
        .map(KeyInfo::from_record)
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(KeyList { keys }))
}

/// Creates a key and answers its token, once. Every replica of both
/// services takes it at once (a notification on `auth.notify_channel`).
/// Needs scope `admin`.
#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "createKey", tag = "keys",
    request_body = KeyBody,
    responses(
        (status = 201, description = "Created: the token is in the body, and nowhere else ever", body = CreatedKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "A key in force has this name (`key_name_taken`), or `auth.max_keys` are in force (`too_many_keys`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid name, scopes or rate limit", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    by: Option<Extension<KeyName>>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    let body: KeyBody = object_body(body)?;
    check_key_name(&body.name).map_err(ApiError::invalid)?;
    // As the schema says (`minItems`, `maxItems`): a longer list can only
    // repeat a scope, which is a client's mistake worth telling.
    if body.scopes.is_empty() || body.scopes.len() > Scope::ALL.len() {
        return Err(ApiError::invalid(format!(
            "scopes: name one to three of ingest, read, admin; got {}",
            body.scopes.len()
        )));
    }
    // Stored as a Postgres integer, hence at most i32::MAX.
    let rate_limit = match body.rate_limit {
        None => None,
        Some(r) => match i32::try_from(r).ok().and_then(|r| u32::try_from(r).ok()) {
            Some(r) if r >= 1 => Some(r),
            _ => {
                return Err(ApiError::invalid(format!(
                    "rate_limit must be from 1 to {}, got {r}",
                    i32::MAX
                )))
            }
        },
    };
    let scopes: Scopes = body.scopes.iter().copied().collect();
    let issued = IssuedKey::generate();
    let text = scopes.to_text();
    let new = NewKey {
        id: &issued.id,
        name: &body.name,
        scopes: &text,
        token_sha256: &issued.token_sha256,
        rate_limit,
    };
    let max_keys = state.auth().max_keys;
    let created = query::keys::create(&state, &new).await?;
    let record = match created {
        KeyCreated::Created(record) => record,
        KeyCreated::NameTaken => return Err(ApiError::KeyNameTaken(body.name)),
        KeyCreated::TooMany => return Err(ApiError::TooManyKeys(max_keys)),
    };
    tracing::info!(key = %record.id, name = %record.name, scopes = %record.scopes, by = %by_name(by.as_ref()), "API key created");
    let answer = CreatedKey {
        key: KeyInfo::from_record(&record)?,
        token: issued.token.expose_secret().to_owned(),
    };
    Ok((
        StatusCode::CREATED,
        // The token must not linger in a cache between here and the client.
        [(header::CACHE_CONTROL, "no-store")],
        ApiJson(answer),
    )
        .into_response())
}

/// Revokes a key: refused by every replica of both services at once (a
/// notification), or at the latest after `auth.reload_interval`. Needs
/// scope `admin`.
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    operation_id = "revokeKey", tag = "keys",
    params(("id" = String, Path, description = "The key's id (not its token)", pattern = "^[0-9a-f]{12}$")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No key in force has this id (`key_not_found`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    by: Option<Extension<KeyName>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = query::keys::revoke(&state, &id)
        .await?
        .ok_or_else(|| ApiError::KeyNotFound(domain::observation::truncate_for_message(&id)))?;
    tracing::info!(key = %revoked.id, name = %revoked.name, by = %by_name(by.as_ref()), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Who did it, for the log line: the key's name, or `anyone` with keys off.
fn by_name(by: Option<&Extension<KeyName>>) -> &str {
    by.map_or("anyone", |Extension(KeyName(name))| name)
}
