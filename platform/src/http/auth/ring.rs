//! [`KeyRing`]: the keys in force, held in memory. A token is
//! `bk_<id>_<secret>`: the id finds the key at once, and the SHA-256 of the
//! whole token is compared with the stored one in constant time. The
//! bootstrap admin key (a setting) is held as its SHA-256 too, compared in
//! constant time on every request, before any key is loaded.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{KeyName, Refusal, Scope, Scopes};
use crate::store::KeyRecord;

/// The name (and metric label) of `auth.bootstrap_admin_key`.
pub const BOOTSTRAP_KEY_NAME: &str = "bootstrap";
/// Counter: requests authenticated, labelled `service` and `key` (its name).
/// The labels are bounded: `auth.max_keys` keys are in force at most, and
/// only an admin creates one; a revoked key's series stays until restart.
pub const KEY_REQUESTS: &str = "http_key_requests_total";
/// Gauge: keys in force held in memory, labelled `service`.
pub const KEYS_IN_FORCE: &str = "http_keys_in_force";
/// Gauge: when the keys were last loaded from Postgres (Unix seconds),
/// labelled `service`: `time() - this` is how stale they may be.
pub const KEYS_LOADED_AT: &str = "http_keys_loaded_timestamp_seconds";

/// Every token starts so: a secret scanner can recognise one.
const TOKEN_PREFIX: &str = "bk_";
/// Random bytes of a key's id (public) and of its secret.
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

type Sha = [u8; 32];

/// A key just created: the token, shown once, and what is stored of it.
#[derive(Debug)]
pub struct IssuedKey {
    pub id: String,
    pub token: SecretString,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
}

impl IssuedKey {
    /// A new random key: 48 bits of id, 256 bits of secret, from the
    /// operating system's generator (through `rand`'s thread generator,
    /// which it seeds).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let id = hex(&id);
        let token = format!("{TOKEN_PREFIX}{id}_{}", hex(&secret));
        let token_sha256 = hex(&sha256(&token));
        Self {
            id,
            token: SecretString::from(token),
            token_sha256,
        }
    }
}

/// One key in force, with what its requests update.
#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    scopes: Scopes,
    digest: Sha,
    rate_limit: Option<u32>,
    limiter: Option<DefaultDirectRateLimiter>,
    uses: metrics::Counter,
    /// When it was last used (Unix ms; 0: not since this process loaded it).
    last_used: AtomicI64,
    /// The last use already written to Postgres.
    written: AtomicI64,
}

impl Entry {
    fn new(
        service: &'static str,
        name: &str,
        scopes: Scopes,
        digest: Sha,
        rate: Option<u32>,
    ) -> Self {
        let limiter = rate
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_second(n)));
        Self {
            name: Arc::from(name),
            scopes,
            digest,
            rate_limit: rate,
            limiter,
            uses: metrics::counter!(KEY_REQUESTS, "service" => service, "key" => name.to_owned()),
            last_used: AtomicI64::new(0),
            written: AtomicI64::new(0),
        }
    }

    fn same_as(&self, record: &KeyRecord, scopes: Scopes, digest: &Sha) -> bool {
        *self.name == *record.name
            && self.scopes == scopes
            && self.digest == *digest
            && self.rate_limit == record.rate_limit
    }
}

/// The keys a service holds: the bootstrap key and the keys in force, by id.
#[derive(Debug)]
pub struct KeyRing {
    service: &'static str,
    bootstrap: Option<Arc<Entry>>,
    keys: RwLock<Arc<HashMap<String, Arc<Entry>>>>,
    loaded: AtomicBool,
}

impl KeyRing {
    /// A ring holding only the bootstrap key, if any; `service` labels its
    /// metrics.
    pub fn new(service: &'static str, bootstrap: Option<&SecretString>) -> Self {
        let bootstrap = bootstrap.map(|key| {
            let digest = sha256(key.expose_secret());
            Arc::new(Entry::new(
                service,
                BOOTSTRAP_KEY_NAME,
                Scopes::ALL,
                digest,
                None,
            ))
        });
        Self {
            service,
            bootstrap,
            keys: RwLock::new(Arc::default()),
            loaded: AtomicBool::new(false),
        }
    }

    /// Whether the keys have been loaded from Postgres at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The `keys` check of `/readyz`: failed until the keys were loaded
    /// once, while only the bootstrap key can be told from a stranger.
    pub fn readiness(&self) -> crate::http::Check {
        crate::http::Check::new(
            "keys",
            if self.is_loaded() {
                Ok(())
            } else {
                Err("the API keys have not been loaded from the database yet".to_owned())
            },
        )
    }

    /// Replaces the keys in force with `records`. A key whose row did not
    /// change keeps its rate limiter and last use; a row that cannot be
    /// read is left out, with an error-level line.
    pub fn replace(&self, records: &[KeyRecord]) {
        let old = self.snapshot();
        let mut keys = HashMap::with_capacity(records.len());
        for record in records {
            let (Some(scopes), Some(digest)) = (
                Scopes::from_text(&record.scopes),
                unhex(&record.token_sha256),
            ) else {
                tracing::error!(key = %record.id, "a stored API key cannot be read; it is left out");
                continue;
            };
            let entry = match old.get(&record.id) {
                Some(entry) if entry.same_as(record, scopes, &digest) => entry.clone(),
                _ => Arc::new(Entry::new(
                    self.service,
                    &record.name,
                    scopes,
                    digest,
                    record.rate_limit,
                )),
            };
            keys.insert(record.id.clone(), entry);
        }
        metrics::gauge!(KEYS_IN_FORCE, "service" => self.service).set(keys.len() as f64);
        metrics::gauge!(KEYS_LOADED_AT, "service" => self.service)
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        self.loaded.store(true, Ordering::Release);
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<Entry>>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks a request's `Authorization` against the keys: `needed` is the
    /// route's scope (`None`: any key will do). Counts the use and keeps
    /// its time.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        needed: Option<Scope>,
    ) -> Result<KeyName, Refusal> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Refusal::Missing(needed));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing(needed))?;
        let digest = sha256(token);
        let entry = self.find(token, &digest)?;
        if let Some(scope) = needed {
            if !entry.scopes.contains(scope) {
                return Err(Refusal::Scope {
                    name: entry.name.clone(),
                    needed: scope,
                    held: entry.scopes.to_text(),
                });
            }
        }
        if let (Some(limiter), Some(limit)) = (&entry.limiter, entry.rate_limit) {
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(Refusal::RateLimited {
                    name: entry.name.clone(),
                    limit,
                    retry_after: wait,
                });
            }
        }
        entry.uses.increment(1);
        entry
            .last_used
            .fetch_max(Utc::now().timestamp_millis(), Ordering::Relaxed);
        Ok(KeyName(entry.name.clone()))
    }

    /// The key a token names, compared in constant time.
    fn find(&self, token: &str, digest: &Sha) -> Result<Arc<Entry>, Refusal> {
        if let Some(bootstrap) = &self.bootstrap {
            if bool::from(bootstrap.digest.ct_eq(digest)) {
                return Ok(bootstrap.clone());
            }
        }
        let id = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(Refusal::Unknown)?;
        match self.snapshot().get(id) {
            Some(entry) if bool::from(entry.digest.ct_eq(digest)) => Ok(entry.clone()),
            Some(_) => Err(Refusal::Unknown),
            // Before the first load, a key of ours may well be in force:
            // "try again", not "no such key".
            None if !self.is_loaded() => Err(Refusal::NotLoaded),
            None => Err(Refusal::Unknown),
        }
    }

    /// The keys used since their last use was last written: `(id, time)`.
    /// Call [`KeyRing::written`] with them once they are stored.
    pub fn unwritten_uses(&self) -> Vec<(String, DateTime<Utc>)> {
        self.snapshot()
            .iter()
            .filter_map(|(id, entry)| {
                let used = entry.last_used.load(Ordering::Relaxed);
                (used > entry.written.load(Ordering::Relaxed))
                    .then(|| DateTime::from_timestamp_millis(used).map(|t| (id.clone(), t)))
                    .flatten()
            })
            .collect()
    }

    /// Marks uses as stored.
    pub fn written(&self, uses: &[(String, DateTime<Utc>)]) {
        let keys = self.snapshot();
        for (id, at) in uses {
            if let Some(entry) = keys.get(id) {
                entry
                    .written
                    .fetch_max(at.timestamp_millis(), Ordering::Relaxed);
            }
        }
    }
}

fn sha256(text: &str) -> Sha {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Sha> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn record(issued: &IssuedKey, name: &str, scopes: &str, rate: Option<u32>) -> KeyRecord {
        KeyRecord {
            id: issued.id.clone(),
            name: name.to_owned(),
            scopes: scopes.to_owned(),
            token_sha256: issued.token_sha256.clone(),
            rate_limit: rate,
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_key_passes_with_its_scopes_only_and_a_wrong_secret_never() {
        let ring = KeyRing::new("test", None);
        let issued = IssuedKey::generate();
        let token = issued.token.expose_secret().to_owned();
        assert!(token.starts_with("bk_") && token.len() == 3 + 12 + 1 + 64);
        assert_eq!(
            ring.authenticate(&bearer(&token), Some(Scope::Read)),
            Err(Refusal::NotLoaded)
        );
        ring.replace(&[record(&issued, "reader", "read", None)]);
        let name = ring
            .authenticate(&bearer(&token), Some(Scope::Read))
            .unwrap();
        assert_eq!(&*name.0, "reader");
        assert!(matches!(
            ring.authenticate(&bearer(&token), Some(Scope::Admin)),
            Err(Refusal::Scope {
                needed: Scope::Admin,
                ..
            })
        ));
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            ring.authenticate(&bearer(&forged), None),
            Err(Refusal::Unknown)
        );
        assert_eq!(
            ring.authenticate(&HeaderMap::new(), Some(Scope::Read)),
            Err(Refusal::Missing(Some(Scope::Read)))
        );
        // Revoked: gone from the ring.
        ring.replace(&[]);
        assert_eq!(
            ring.authenticate(&bearer(&token), None),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn the_bootstrap_key_holds_every_scope_before_anything_is_loaded() {
        let secret = SecretString::from("b".repeat(40));
        let ring = KeyRing::new("test", Some(&secret));
        for scope in Scope::ALL {
            let name = ring
                .authenticate(&bearer(&"b".repeat(40)), Some(scope))
                .unwrap();
            assert_eq!(&*name.0, BOOTSTRAP_KEY_NAME);
        }
        assert_eq!(
            ring.authenticate(&bearer(&"b".repeat(39)), None),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn a_rate_limited_key_is_refused_past_its_burst_and_says_when_to_retry() {
        let ring = KeyRing::new("test", None);
        let issued = IssuedKey::generate();
        let token = issued.token.expose_secret().to_owned();
        ring.replace(&[record(&issued, "slow", "ingest", Some(2))]);
        for _ in 0..2 {
            ring.authenticate(&bearer(&token), Some(Scope::Ingest))
                .unwrap();
        }
        match ring.authenticate(&bearer(&token), Some(Scope::Ingest)) {
            Err(Refusal::RateLimited {
                limit, retry_after, ..
            }) => {
                assert_eq!(limit, 2);
                assert!(retry_after.as_millis() > 0 && retry_after.as_secs() <= 1);
            }
            other => panic!("not limited: {other:?}"),
        }
        // A reload of the same row keeps the limiter's state.
        ring.replace(&[record(&issued, "slow", "ingest", Some(2))]);
        assert!(ring
            .authenticate(&bearer(&token), Some(Scope::Ingest))
            .is_err());
    }

    #[test]
    fn uses_are_reported_until_written() {
        let ring = KeyRing::new("test", None);
        let issued = IssuedKey::generate();
        ring.replace(&[record(&issued, "k", "read", None)]);
        assert!(ring.unwritten_uses().is_empty());
        ring.authenticate(&bearer(issued.token.expose_secret()), None)
            .unwrap();
        let uses = ring.unwritten_uses();
        assert_eq!(uses.len(), 1);
        ring.written(&uses);
        assert!(ring.unwritten_uses().is_empty());
    }
}
