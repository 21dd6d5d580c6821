//! The one liveness and readiness shape of every service: `/healthz`
//! answers `{"status":"ok"}`; `/readyz` answers 200 or 503 with
//! `{"status":"ready"|"not_ready","checks":[{"name","ok","error"?}]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The `/healthz` body: the process is up and serving HTTP.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

impl Health {
    pub const OK: Self = Self { status: "ok" };
}

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// The `/readyz` body: whether the service can do its work, and if not,
/// which dependency stops it. Answered with 200 when every check passed
/// and 503 (with `Retry-After`) when one failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "not_ready", "checks": [{"name": "database", "ok": false, "error": "timed out"}]}))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn new(checks: Vec<Check>) -> Self {
        let ready = checks.iter().all(|c| c.ok);
        Self {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        if self.is_ready() {
            return axum::Json(self).into_response();
        }
        for check in self.checks.iter().filter(|c| !c.ok) {
            tracing::warn!(
                check = check.name,
                error = check.error.as_deref().unwrap_or_default(),
                "not ready"
            );
        }
        // A probe is cheap; ask again soon.
        let retry = [(header::RETRY_AFTER, HeaderValue::from_static("1"))];
        (StatusCode::SERVICE_UNAVAILABLE, retry, axum::Json(self)).into_response()
    }
}

/// One dependency's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// `broker`, `database`, `consumer` or `partitions`.
    #[schema(example = "broker")]
    pub name: &'static str,
    pub ok: bool,
    /// What failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A broker check: the topic it asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "observations")]
    pub topic: Option<String>,
    /// A broker check: the topic's partitions, as the broker reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1)]
    pub partitions: Option<usize>,
    /// A broker check: brokers in the cluster's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 1)]
    pub brokers: Option<usize>,
}

impl Check {
    /// A check that passed when `outcome` is `Ok`, else failed with its error.
    pub fn new(name: &'static str, outcome: Result<(), String>) -> Self {
        let (ok, error) = match outcome {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        Self {
            name,
            ok,
            error,
            topic: None,
            partitions: None,
            brokers: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(readiness: Readiness) -> (u16, Option<String>, serde_json::Value) {
        let response = readiness.into_response();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        (status, retry, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn ready_only_when_every_check_passed() {
        let ready = Readiness::new(vec![Check::new("database", Ok(()))]);
        assert_eq!(
            answer(ready).await,
            (
                200,
                None,
                serde_json::json!({"status": "ready", "checks": [{"name": "database", "ok": true}]})
            )
        );
        let not_ready = Readiness::new(vec![
            Check::new("database", Ok(())),
            Check::new("broker", Err("timed out".into())),
        ]);
        assert_eq!(
            answer(not_ready).await,
            (
                503,
                Some("1".to_owned()),
                serde_json::json!({"status": "not_ready", "checks": [
                    {"name": "database", "ok": true},
                    {"name": "broker", "ok": false, "error": "timed out"},
                ]})
            )
        );
    }
}
