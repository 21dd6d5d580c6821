//! The uploads being validated right now. `POST /uploads` holds its request
//! until the whole file is read and checked (the answer may still be 422),
//! and an upload's id comes from the file's hash, known only at the end. So
//! until then an upload lives here, in this process, under a provisional id
//! `validating-<n>`: `GET /uploads` lists it first, status `validating`, with
//! the bytes received so far, and `GET /uploads/{id}` finds it. It goes when
//! the POST answers, whatever the answer, or when the client goes away (the
//! request's future is dropped, and the registration with it). Nothing of
//! it is in Postgres: a producer that dies ends the client's POST as well,
//! and there is nothing to resume before a file is whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

/// The prefix of provisional ids; a content id is hexadecimal, so the two
/// never meet.
pub const ID_PREFIX: &str = "validating-";

/// Every upload being validated by this process.
#[derive(Debug, Default)]
pub struct Validations {
    next: AtomicU64,
    running: Mutex<Vec<Arc<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    filename: Option<String>,
    received_at: DateTime<Utc>,
    bytes: AtomicU64,
}

/// An upload being validated, as `GET /uploads` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validating {
    pub id: String,
    pub filename: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Bytes of the body received so far (as sent: compressed, if it is).
    pub bytes_received: u64,
}

impl Validations {
    /// Lists a new upload until the returned registration is dropped.
    pub fn register(
        &self,
        filename: Option<String>,
        received_at: DateTime<Utc>,
    ) -> Registration<'_> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Entry {
            id: format!("{ID_PREFIX}{n}"),
            filename,
            received_at,
            bytes: AtomicU64::new(0),
        });
        self.lock().push(entry.clone());
        Registration {
            validations: self,
            entry,
        }
    }

    /// The uploads being validated, newest first.
    pub fn list(&self) -> Vec<Validating> {
        self.lock().iter().rev().map(|e| e.snapshot()).collect()
    }

    /// The upload with this provisional id, while it is being validated.
    pub fn get(&self, id: &str) -> Option<Validating> {
        self.lock()
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.snapshot())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Entry>>> {
        // The list stays consistent whatever a panicking holder did: every
        // change is one push or one removal.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entry {
    fn snapshot(&self) -> Validating {
        Validating {
            id: self.id.clone(),
            filename: self.filename.clone(),
            received_at: self.received_at,
            bytes_received: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// An upload's place in [`Validations`]; dropping it removes the upload.
#[derive(Debug)]
pub struct Registration<'a> {
    validations: &'a Validations,
    entry: Arc<Entry>,
}

impl Registration<'_> {
    /// Counts bytes of the body as they arrive.
    pub fn received(&self, bytes: usize) {
        self.entry
            .bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.validations
            .lock()
            .retain(|e| !Arc::ptr_eq(e, &self.entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_listed_newest_first_while_registered_and_gone_after() {
        let validations = Validations::default();
        let now = Utc::now();
        let first = validations.register(Some("a.csv".into()), now);
        let second = validations.register(None, now);
        second.received(100);
        second.received(23);
        let listed = validations.list();
        assert_eq!(
            listed.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            ["validating-2", "validating-1"]
        );
        assert_eq!(listed[0].bytes_received, 123);
        assert_eq!(
            validations.get("validating-1").unwrap().filename.as_deref(),
            Some("a.csv")
        );
        drop(first);
        assert_eq!(validations.get("validating-1"), None);
        assert_eq!(validations.list().len(), 1);
        drop(second);
        assert!(validations.list().is_empty());
    }
}
