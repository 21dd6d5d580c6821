//! One partition's share of a batch: records parsed with the shared parser as
//! they are polled and folded into per-model deltas, poison records copied
//! aside for the dead-letter topic. Pure bookkeeping: no I/O.

use std::collections::{HashMap, HashSet};

use domain::bayes::Counts;
use domain::observation::{parse_record, Observation};
use domain::ModelId;
use platform::store::{IdentifiedDelta, ModelDelta};
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
    /// Observations without an id, summed per model, with the last offset.
    deltas: HashMap<ModelId, (Counts, i64)>,
    /// Observations with an id, one by one: the store applies each once.
    pub identified: Vec<IdentifiedDelta>,
    ids: HashSet<String>,
    /// Observations whose id came earlier in this same batch: skipped.
    pub duplicates: u64,
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
            Ok(Observation {
                id: Some(id),
                model,
                successes,
                failures,
                ..
            }) => {
                // A client's retry that landed in the same batch counts once.
                if self.ids.insert(id.clone()) {
                    self.observations += successes + failures;
                    self.identified.push(IdentifiedDelta {
                        id,
                        delta: ModelDelta {
                            model,
                            counts: Counts::new(successes, failures),
                            last_offset: offset,
                        },
                    });
                } else {
                    self.duplicates += 1;
                }
                return;
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn batch_of(values: &[&str]) -> PartitionBatch {
        let default = ModelId::parse("globe").unwrap();
        let mut batch = PartitionBatch::default();
        for (offset, value) in values.iter().enumerate() {
            batch.push(
                offset as i64,
                None,
                Some(value.as_bytes()),
                &default,
                || None,
            );
        }
        batch
    }

    #[test]
    fn an_id_repeated_within_a_batch_counts_once_and_ids_stay_apart_from_the_sums() {
        let batch = batch_of(&[
            r#"{"outcome":"w","id":"a"}"#,
            "w",
            r#"{"outcome":"w","id":"a"}"#,
            r#"{"outcome":"l","id":"b"}"#,
            "l",
        ]);
        assert_eq!(batch.duplicates, 1);
        assert_eq!(batch.observations, 4);
        let ids: Vec<_> = batch.identified.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(batch.identified[1].delta.last_offset, 3);
        let deltas = batch.deltas();
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].counts, Counts::new(1, 1));
        assert_eq!(deltas[0].last_offset, 4);
    }
}
