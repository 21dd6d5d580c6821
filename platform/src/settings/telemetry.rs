//! `[telemetry]`: how the services log.

use serde::{Deserialize, Serialize};

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub log_filter: String,
    /// `human` (default) or `json` (one object a line).
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            log_format: LogFormat::Human,
        }
    }
}
