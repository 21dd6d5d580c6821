//! `[auth]`: the API keys both HTTP services take (see `platform::http::auth`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{check, check_text, expose_optional_secret, SettingsError, MAX_PG_IDENTIFIER_BYTES};

/// The shortest bootstrap admin key accepted: 32 characters, so that even a
/// key of letters and digits typed by a person holds well over 128 bits.
pub const MIN_BOOTSTRAP_KEY_CHARS: usize = 32;

/// API keys on the HTTP APIs of the producer and the model service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Whether every route but `/healthz`, `/readyz`, `/metrics` and the two
    /// dashboard pages needs a key (`Authorization: Bearer <key>`): 401
    /// without one, 403 with one that lacks the route's scope. Off (the
    /// local default): every route is open, as before keys existed.
    pub required: bool,
    /// An admin key (all three scopes, named `bootstrap`) known from the
    /// settings alone, so it works before Postgres answers: use it to create
    /// the first keys with `bayes keys create`. At least 32 characters;
    /// unset: none.
    #[serde(serialize_with = "expose_optional_secret")]
    pub bootstrap_admin_key: Option<SecretString>,
    /// The `LISTEN`/`NOTIFY` channel on which a key's creation or revocation
    /// is announced, so every replica reloads its keys at once.
    pub notify_channel: String,
    /// How often the keys are reloaded from Postgres in full, besides the
    /// notifications: the longest a revocation waits when a notification
    /// was lost.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// How often the last use of each key is written to Postgres (at most
    /// one write per interval and service, whatever the traffic).
    #[serde(with = "humantime_serde")]
    pub last_used_interval: Duration,
    /// The most keys that are not revoked; creating one more is refused
    /// (409 `too_many_keys`). Bounds the per-key metric's series.
    pub max_keys: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: false,
            bootstrap_admin_key: None,
            notify_channel: "api_keys".into(),
            reload_interval: Duration::from_secs(30),
            last_used_interval: Duration::from_secs(60),
            max_keys: 100,
        }
    }
}

impl AuthSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if let Some(key) = &self.bootstrap_admin_key {
            let key = key.expose_secret();
            // Never echo the key itself: the message goes to the logs.
            check(
                "auth.bootstrap_admin_key",
                key.chars().count() >= MIN_BOOTSTRAP_KEY_CHARS,
                || format!("is shorter than {MIN_BOOTSTRAP_KEY_CHARS} characters"),
            )?;
            check(
                "auth.bootstrap_admin_key",
                key.chars().all(|c| c.is_ascii_graphic()),
                || "holds characters other than printable ASCII without spaces".to_owned(),
            )?;
        }
        check_text(
            "auth.notify_channel",
            &self.notify_channel,
            MAX_PG_IDENTIFIER_BYTES,
        )?;
        check(
            "auth.notify_channel",
            !self.notify_channel.contains('\0'),
            || "contains a NUL byte".to_owned(),
        )?;
        check(
            "auth.reload_interval",
            !self.reload_interval.is_zero(),
            || "0s would reload the keys in a busy loop".to_owned(),
        )?;
        check(
            "auth.last_used_interval",
            !self.last_used_interval.is_zero(),
            || "0s would write in a busy loop".to_owned(),
        )?;
        check("auth.max_keys", self.max_keys >= 1, || {
            "0 would refuse every key".to_owned()
        })
    }
}
