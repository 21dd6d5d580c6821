//! The producer's own request extractors (the `Idempotency-Key` header, the
//! body of `POST /observations` by content type), whose rejections are
//! `ApiError`s in the common JSON shape. Query strings and paths use the
//! common `platform::http` extractors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use crate::error::ApiError;
use crate::state::AppState;

/// The name of the request header whose value becomes the records' `id`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The longest `Idempotency-Key` accepted: shorter than a record's `id`, so
/// that `{key}:{index}` fits for every item of a batch (the domain asserts it).
pub use domain::observation::MAX_IDEMPOTENCY_KEY_LEN as MAX_KEY_LEN;

/// The `Idempotency-Key` header as the OpenAPI document states it.
pub const KEY_PATTERN: &str = "^[!-~]([ -~]*[!-~])?$";

/// The optional `Idempotency-Key` header: 1 to 128 printable ASCII
/// characters (spaces only inside), as [`KEY_PATTERN`] says.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        // Two keys would leave it to chance which one the request is bound to.
        if values.next().is_some() {
            return Err(ApiError::BadRequest(
                "send one Idempotency-Key header, not several".into(),
            ));
        }
        let bytes = value.as_bytes();
        let printable = |b: &u8| (b' '..=b'~').contains(b);
        let valid = (1..=MAX_KEY_LEN).contains(&bytes.len())
            && bytes.iter().all(printable)
            && bytes.first() != Some(&b' ')
            && bytes.last() != Some(&b' ');
        match value.to_str() {
            Ok(key) if valid => Ok(Self(Some(key.to_owned()))),
            _ => Err(ApiError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} printable ASCII characters, with no space at either end"
            ))),
        }
    }
}

/// The body of `POST /observations`, by content type; not yet parsed.
#[derive(Debug, Clone)]
pub enum ObservationsBody {
    /// `application/json` (or any `application/*+json`).
    Json(Bytes),
    /// `text/plain` in UTF-8.
    Text(Bytes),
}

impl FromRequest<AppState> for ObservationsBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // The media type is checked first, so a client sending the wrong kind
        // of body learns that before it learns anything about the body.
        let kind = media_type(request.headers())?;
        let limit = state.settings().max_body_bytes;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_error(rejection, limit))?;
        Ok(match kind {
            MediaType::Json => Self::Json(bytes),
            MediaType::Text => Self::Text(bytes),
        })
    }
}

enum MediaType {
    Json,
    Text,
}

const ACCEPTED_TYPES: &str = "send application/json (one observation or an array) or text/plain (w/l outcomes, with ?model=)";

fn media_type(headers: &HeaderMap) -> Result<MediaType, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "no Content-Type: {ACCEPTED_TYPES}"
        )));
    };
    let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return Ok(MediaType::Json);
    }
    if essence == "text/plain" {
        // Text is read as UTF-8 (of which ASCII is a part); another declared
        // charset would be misread, so it is refused rather than guessed.
        let charset = parts.find_map(|p| p.strip_prefix("charset="));
        return match charset.map(|c| c.trim_matches('"')) {
            None | Some("utf-8" | "utf8" | "us-ascii") => Ok(MediaType::Text),
            Some(other) => Err(ApiError::UnsupportedMediaType(format!(
                "charset {other:?} is not supported: send text/plain in UTF-8"
            ))),
        };
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "Content-Type {value:?} is not supported: {ACCEPTED_TYPES}"
    )))
}

fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest(format!(
            "could not read the body: {}",
            rejection.body_text()
        ))
    }
}
