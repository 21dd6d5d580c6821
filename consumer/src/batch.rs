//! One partition's share of a batch: records parsed with the shared parser as
//! they are polled and folded into per-model deltas, poison records copied
//! aside for the dead-letter topic. Pure bookkeeping: no I/O.

use std::collections::HashMap;

use domain::bayes::Counts;
use domain::observation::parse_record;
use domain::ModelId;
use platform::store::ModelDelta;
use rdkafka::message::OwnedHeaders;

/// A record that is not an observation, kept as it arrived.
#[derive(Debug)]
pub(crate) struct Poison {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's own headers (a trace id, say), passed on to the DLQ.
    pub headers: Option<OwnedHeaders>,
    /// Why it was refused: the parser's message.
    pub error: String,
}

/// The records of one partition since the last flush.
#[derive(Debug, Default)]
pub(crate) struct PartitionBatch {
    pub first_offset: Option<i64>,
    /// The offset after the last record seen.
    pub next_offset: i64,
    pub records: usize,
    /// Bytes of the records' keys and values, which bound a batch as
    /// `consumer.batch_max_bytes` says.
    pub bytes: usize,
    /// Observations (trials) in the valid records.
    pub observations: u64,
    deltas: HashMap<ModelId, (Counts, i64)>,
    pub poison: Vec<Poison>,
}

impl PartitionBatch {
    /// Parses one record and folds it in. `headers` is called only for a
    /// poison record, so valid records cost no copy.
    pub fn push(
        &mut self,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        default_model: &ModelId,
        headers: impl FnOnce() -> Option<OwnedHeaders>,
    ) {
        self.first_offset.get_or_insert(offset);
        self.next_offset = offset + 1;
        self.records += 1;
        self.bytes += key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        // A record without a value (a tombstone) is empty, hence poison.
        let error = match parse_record(key, value.unwrap_or_default(), default_model) {
            Ok(obs) => {
                let delta = Counts::new(obs.successes, obs.failures);
                let entry = self
                    .deltas
                    .entry(obs.model)
                    .or_insert((Counts::ZERO, offset));
                match entry.0.checked_add(delta) {
                    Some(sum) => {
                        *entry = (sum, offset);
                        self.observations += obs.successes + obs.failures;
                        return;
                    }
                    // Unreachable in practice (a record holds at most 10^6
                    // trials), but never wrap around silently.
                    None => "counts overflow a 64-bit integer within one batch".to_owned(),
                }
            }
            Err(err) => err.to_string(),
        };
        self.poison.push(Poison {
            offset,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers(),
            error,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The per-model deltas for the store, sorted by model.
    pub fn deltas(&self) -> Vec<ModelDelta> {
        let mut deltas: Vec<_> = self
            .deltas
            .iter()
            .map(|(model, (counts, last_offset))| ModelDelta {
                model: model.clone(),
                counts: *counts,
                last_offset: *last_offset,
            })
            .collect();
        deltas.sort_by(|a, b| a.model.as_str().cmp(b.model.as_str()));
        deltas
    }
}
