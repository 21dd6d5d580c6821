//! `ApiJson`, `ApiQuery` and `ApiPath`: axum's extractors with their
//! rejections turned into [`Rejection`], answered in the common error shape
//! with the statuses of the table in the module above.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ErrorResponse;

/// Why a request was refused before its handler ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 400: the body is not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// 400: the request cannot be read at all.
    #[error("{0}")]
    BadRequest(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: the body is over the size limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 422: the body is JSON but not a valid value.
    #[error("{0}")]
    InvalidBody(String),
    /// 422: a path or query parameter has the wrong type or is out of range.
    #[error("{0}")]
    InvalidParameter(String),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidBody(_) | Self::InvalidParameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadRequest(_) => "bad_request",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidParameter(_) => "invalid_parameter",
        }
    }

    /// The answer, in the common error shape.
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse::new(self.status(), self.code(), self.to_string())
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.to_error_response().into_response()
    }
}

impl From<JsonRejection> for Rejection {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(e) => Self::UnsupportedMediaType(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            // The body could not be read (cut off, a broken chunk).
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for Rejection {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidParameter(rejection.body_text())
    }
}

impl From<PathRejection> for Rejection {
    fn from(rejection: PathRejection) -> Self {
        match &rejection {
            PathRejection::FailedToDeserializePathParams(e)
                if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
            {
                Self::BadRequest(rejection.body_text())
            }
            _ => Self::InvalidParameter(rejection.body_text()),
        }
    }
}

/// A JSON body, as `axum::Json` reads it but strict: an object that repeats
/// a key is refused (422 `invalid_body`), since parsers disagree on which of
/// the two counts. Rejections are [`Rejection`]s; also a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejection> {
        if !is_json(request.headers()) {
            return Err(Rejection::UnsupportedMediaType(
                "Expected request with `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Rejection::PayloadTooLarge
                } else {
                    Rejection::BadRequest(rejection.body_text())
                }
            })?;
        // The strict pass finds repeated keys (and syntax errors); the typed
        // one then says what does not fit the type, with its position.
        domain::json::from_slice(&bytes).map_err(|e| json_error(&e))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| json_error(&e))
    }
}

/// The rejection of a body that is not the JSON expected, worded as axum's.
fn json_error(err: &serde_json::Error) -> Rejection {
    if err.is_data() {
        Rejection::InvalidBody(format!(
            "Failed to deserialize the JSON body into the target type: {err}"
        ))
    } else {
        Rejection::MalformedJson(format!("Failed to parse the request body as JSON: {err}"))
    }
}

/// `application/json`, or any `application/*+json`, as axum's `Json` decides.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are [`Rejection`]s (422).
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Rejection))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` whose rejections are [`Rejection`]s.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Rejection))]
pub struct ApiPath<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::{get, put};
    use axum::Router;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Params {
        #[allow(dead_code)]
        mass: Option<f64>,
    }

    #[derive(Debug, Deserialize)]
    struct Body3 {
        #[allow(dead_code)]
        n: u8,
    }

    fn app() -> Router {
        Router::new()
            .route("/q", get(|ApiQuery(_): ApiQuery<Params>| async { "ok" }))
            .route("/p/{n}", get(|ApiPath(_): ApiPath<u8>| async { "ok" }))
            .route("/j", put(|ApiJson(_): ApiJson<Body3>| async { "ok" }))
            .layer(axum::extract::DefaultBodyLimit::max(64))
    }

    async fn answer(request: Request<Body>) -> (u16, serde_json::Value) {
        let response = app().oneshot(request).await.expect("an answer");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn get_(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).expect("a request")
    }

    fn put_(content_type: &str, body: &str) -> Request<Body> {
        Request::put("/j")
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .expect("a request")
    }

    #[tokio::test]
    async fn a_json_body_is_read_strictly_whatever_its_json_media_type() {
        let response = app()
            .oneshot(put_("application/vnd.x+json; charset=utf-8", "{\"n\":1}"))
            .await
            .expect("an answer");
        assert_eq!(response.status(), 200);
        let (status, body) = answer(put_("application/json", "{\"n\":1,\"n\":2}")).await;
        assert_eq!(status, 422);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("duplicate key `n`"), "{body}");
    }

    #[tokio::test]
    async fn every_rejection_has_the_status_and_code_of_the_convention() {
        let long = format!("{{\"n\":1,\"pad\":\"{}\"}}", "x".repeat(100));
        for (request, status, code) in [
            (get_("/q?mass=abc"), 422, "invalid_parameter"),
            (get_("/p/300"), 422, "invalid_parameter"),
            (get_("/p/%FF"), 400, "bad_request"),
            (put_("application/json", "{\"n\":"), 400, "malformed_json"),
            (put_("application/json", "{\"n\":-1}"), 422, "invalid_body"),
            (
                put_("application/json", "{\"n\":1,\"n\":2}"),
                422,
                "invalid_body",
            ),
            (
                put_("text/plain", "{\"n\":1}"),
                415,
                "unsupported_media_type",
            ),
            (put_("application/json", &long), 413, "payload_too_large"),
        ] {
            let what = format!("{} {}", request.method(), request.uri());
            let (got, body) = answer(request).await;
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{what}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}: {body}"
            );
        }
    }
}
