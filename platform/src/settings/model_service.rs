//! `[model_service]`: the model service's HTTP service and the bounds of
//! what one request may ask of it.

use serde::{Deserialize, Serialize};

use super::{check, SettingsError};

/// The model service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelServiceSettings {
    pub host: String,
    pub port: u16,
    /// Rendered plots kept in memory.
    pub plot_cache_entries: usize,
    /// The most draws `GET /models/{id}/samples` returns.
    pub max_samples: usize,
    /// The most trials `GET /models/{id}/predictive` accepts.
    pub max_trials: u32,
    /// The widest plot drawn, in pixels.
    pub max_plot_width: u32,
    /// The tallest plot drawn, in pixels.
    pub max_plot_height: u32,
    /// The largest request body accepted (a `grid` prior of 100000 weights needs ~2 MiB), in bytes.
    pub max_body_bytes: usize,
    /// The most `/events` streams open at once; past it a new stream is
    /// refused with 503 `too_many_streams` and `Retry-After`.
    pub max_event_streams: usize,
    /// The most `/events` streams one client holds at once (a client is an
    /// IPv4 address, or an IPv6 /64 network, as the service sees it: behind
    /// a proxy, the proxy); past it: 503 `too_many_streams`.
    pub max_event_streams_per_client: usize,
    /// The most changes of one model's prior or grid size within any hour
    /// (`PUT /models/{id}` past it answers 429 with `Retry-After`); creating
    /// a model is not a change, and a PUT that changes nothing is not
    /// counted. Counted in Postgres, so it holds across replicas. 0: no bound.
    pub max_config_changes_per_hour: u32,
    /// How often the in-memory current state is compared with the database
    /// (every model's version and configuration time, every experiment's),
    /// reloading entries whose notification never arrived: the bound on
    /// staleness when a notification is lost without the listening
    /// connection noticing. In seconds, at least 1.
    pub audit_interval_seconds: u64,
    /// Units' assignments kept in memory (least recently used out first),
    /// so a unit asked again is answered without a database round trip.
    /// About 200 bytes each; 0: every repeat reads the database.
    pub assignment_cache_entries: u64,
}

impl Default for ModelServiceSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
            plot_cache_entries: 256,
            max_samples: 100_000,
            max_trials: 1_000,
            max_plot_width: 4_000,
            max_plot_height: 4_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_event_streams: 1_024,
            max_event_streams_per_client: 16,
            max_config_changes_per_hour: 10,
            audit_interval_seconds: 30,
            assignment_cache_entries: 100_000,
        }
    }
}

impl ModelServiceSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check(
            "model_service.max_event_streams",
            self.max_event_streams >= 1,
            || "0 would refuse every /events stream".to_owned(),
        )?;
        check(
            "model_service.max_event_streams_per_client",
            self.max_event_streams_per_client >= 1,
            || "0 would refuse every /events stream".to_owned(),
        )?;
        check(
            "model_service.audit_interval_seconds",
            self.audit_interval_seconds >= 1,
            || "0 would compare the whole state with the database without pause".to_owned(),
        )
    }
}
