//! The `Idempotency-Key` header's promise, kept where this process can tell:
//! one key names one request. A retry with the key and the same
//! observations is published again (the consumer counts it once); the key
//! with other observations is refused rather than acknowledged and dropped,
//! and so is the key while its first request is still waiting for the
//! broker, both with 409 and a code of their own. (The IETF draft "The
//! Idempotency-Key HTTP Header Field" answers the first with 422; we keep
//! 422 for what is wrong with a request by itself, and a reused key is not:
//! the request conflicts with the key's earlier use.)
//!
//! The producer keeps no state of its own but this: the keys of the requests
//! it answered, up to `producer.idempotency_keys` of them, each for
//! `consumer.dedup_retention` (as long as the consumer remembers the ids).
//! A key it no longer holds, or that another replica answered, it cannot
//! judge: then the consumer does, and dead-letters a record whose id was
//! applied with other content (reason `id conflict`).

use std::time::Duration;

use domain::observation::Observation;
use moka::ops::compute::Op;
use moka::sync::Cache;
use sha2::{Digest as _, Sha256};

/// What a request's observations hash to: their ids, models and counts, in
/// order. `observed_at` is left out, as the consumer leaves it out of an
/// id's content: a client that stamps each attempt anew still retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(observations: &[Observation]) -> Self {
        let mut hash = Sha256::new();
        for o in observations {
            // Lengths first, so no two different lists hash the same bytes.
            let id = o.id.as_deref().unwrap_or_default();
            hash.update((id.len() as u64).to_le_bytes());
            hash.update(id.as_bytes());
            hash.update((o.model.as_str().len() as u64).to_le_bytes());
            hash.update(o.model.as_str().as_bytes());
            hash.update(o.successes.to_le_bytes());
            hash.update(o.failures.to_le_bytes());
        }
        Self(hash.finalize().into())
    }
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Its request is waiting for the broker.
    InFlight(Fingerprint),
    /// Its request was answered (202 or 503: a 503 promises nothing, so the
    /// records may be in the log all the same, and the key stays bound).
    Answered(Fingerprint),
}

/// Why a key cannot be used for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a request with this Idempotency-Key is still waiting for the broker; retry when it has been answered")]
    InUse,
    #[error("this Idempotency-Key was used for a request with other observations; use a new key for new observations")]
    Reused,
}

/// The keys this process answered, bounded in number and age.
#[derive(Debug)]
pub struct Keys {
    cache: Cache<String, Claim>,
}

impl Keys {
    /// At most `capacity` keys, each forgotten `ttl` after its request.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Claims `key` for a request whose observations are `fingerprint`. The
    /// claim ends, and the key is bound to the fingerprint, when the
    /// returned guard drops: after the answer, or when the client left.
    pub fn claim(&self, key: &str, fingerprint: Fingerprint) -> Result<Claimed<'_>, KeyError> {
        let mut verdict = Ok(());
        self.cache.entry(key.to_owned()).and_compute_with(|held| {
            match held.map(|entry| entry.into_value()) {
                Some(Claim::InFlight(_)) => {
                    verdict = Err(KeyError::InUse);
                    Op::Nop
                }
                Some(Claim::Answered(before)) if before != fingerprint => {
                    verdict = Err(KeyError::Reused);
                    Op::Nop
                }
                _ => Op::Put(Claim::InFlight(fingerprint)),
            }
        });
        verdict.map(|()| Claimed {
            keys: self,
            key: key.to_owned(),
            fingerprint,
        })
    }
}

/// A key claimed by a request in progress.
#[derive(Debug)]
pub struct Claimed<'a> {
    keys: &'a Keys,
    key: String,
    fingerprint: Fingerprint,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        // Also when the handler is dropped mid-way (the client left): the
        // records may have reached the broker, so the key stays bound.
        self.keys.cache.insert(
            std::mem::take(&mut self.key),
            Claim::Answered(self.fingerprint),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use domain::ModelId;

    use super::*;

    fn observation(model: &str, successes: u64, failures: u64, id: &str) -> Observation {
        Observation {
            model: ModelId::parse(model).unwrap(),
            successes,
            failures,
            id: Some(id.to_owned()),
            observed_at: None,
        }
    }

    #[test]
    fn a_key_is_bound_to_its_first_requests_observations() {
        let keys = Keys::new(100, Duration::from_secs(60));
        let a = Fingerprint::of(&[observation("a", 1, 0, "k")]);
        let b = Fingerprint::of(&[observation("b", 3, 2, "k")]);
        let first = keys.claim("k", a).unwrap();
        assert_eq!(keys.claim("k", a).unwrap_err(), KeyError::InUse);
        assert_eq!(keys.claim("k", b).unwrap_err(), KeyError::InUse);
        drop(first);
        // A retry of the same request goes through; another request does not.
        drop(keys.claim("k", a).unwrap());
        assert_eq!(keys.claim("k", b).unwrap_err(), KeyError::Reused);
        // Other keys are not affected.
        drop(keys.claim("other", b).unwrap());
    }

    #[test]
    fn the_fingerprint_covers_ids_models_and_counts_but_not_the_time() {
        let base = observation("a", 1, 0, "k");
        let mut stamped = base.clone();
        stamped.observed_at = Some(chrono::Utc::now());
        assert_eq!(
            Fingerprint::of(std::slice::from_ref(&base)),
            Fingerprint::of(&[stamped])
        );
        for other in [
            observation("b", 1, 0, "k"),
            observation("a", 0, 1, "k"),
            observation("a", 1, 0, "k2"),
        ] {
            assert_ne!(
                Fingerprint::of(std::slice::from_ref(&base)),
                Fingerprint::of(&[other])
            );
        }
        // Lengths are hashed, so moving a character between fields differs.
        assert_ne!(
            Fingerprint::of(&[observation("ab", 1, 0, "c")]),
            Fingerprint::of(&[observation("a", 1, 0, "bc")])
        );
    }
}
