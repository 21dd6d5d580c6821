//! One partition's share of a batch: records parsed with the shared parser as
//! they are polled and folded into per-model deltas, poison records copied
//! aside for the dead-letter topic. Pure bookkeeping: no I/O.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use domain::bayes::Counts;
use domain::observation::{parse_record, upload_line_id, Observation};
use domain::ModelId;
use platform::store::{IdentifiedDelta, ModelDelta};
use rdkafka::message::OwnedHeaders;

/// A record as it arrived: what a dead letter carries.
#[derive(Debug)]
pub(crate) struct Record {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's own headers (a trace id, say), passed on to the DLQ.
    pub headers: Option<OwnedHeaders>,
}

/// A record that is not an observation, or one the store refused, kept as
/// it arrived.
#[derive(Debug)]
pub(crate) struct Poison {
    pub record: Record,
    /// Why it was refused: the parser's message, or the store's.
    pub error: String,
}

impl Record {
    fn into_poison(self, error: String) -> Poison {
        Poison {
            record: self,
            error,
        }
    }
}

/// What an identified observation carried: what its id stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    model: ModelId,
    counts: Counts,
    offset: i64,
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
    /// The first observation of each id in this batch.
    ids: HashMap<String, Content>,
    /// The records behind `identified` whose id the store keeps with its
    /// content (every id but an upload's line), as they arrived: the store
    /// may refuse one (its id was applied with other content, or it holds a
    /// value Postgres cannot store), and then it is dead-lettered whole.
    held: HashMap<String, Record>,
    /// With `models.auto_create` off, the records of the observations not
    /// in `held` (without an id, or with an upload's line id), by model, as
    /// they arrived: a model may not exist, and then every record of it is
    /// dead-lettered whole.
    by_model: HashMap<ModelId, Vec<Record>>,
    /// Observations whose id came earlier in this same batch, with the same
    /// content: skipped.
    pub duplicates: u64,
    pub poison: Vec<Poison>,
}

impl PartitionBatch {
    /// Parses one record and folds it in. `headers` is called only for a
    /// record that may go to the dead-letter topic, so most valid records
    /// cost no copy; with `keep_records` (`models.auto_create` off) every
    /// valid record is kept, since its model may turn out not to exist.
    pub fn push(
        &mut self,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        default_model: &ModelId,
        keep_records: bool,
        headers: impl FnOnce() -> Option<OwnedHeaders>,
    ) {
        self.first_offset.get_or_insert(offset);
        self.next_offset = offset + 1;
        self.records += 1;
        self.bytes += key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let record = |headers: Option<OwnedHeaders>| Record {
            offset,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
        };
        // A record without a value (a tombstone) is empty, hence poison.
        let error = match parse_record(key, value.unwrap_or_default(), default_model) {
            Ok(Observation {
                id: Some(id),
                model,
                successes,
                failures,
                ..
            }) => {
                let content = Content {
                    model,
                    counts: Counts::new(successes, failures),
                    offset,
                };
                match self.ids.entry(id) {
                    Entry::Vacant(entry) => {
                        let id = entry.key().clone();
                        if upload_line_id(&id).is_none() {
                            self.held.insert(id.clone(), record(headers()));
                        } else if keep_records {
                            self.by_model
                                .entry(content.model.clone())
                                .or_default()
                                .push(record(headers()));
                        }
                        self.observations += successes + failures;
                        self.identified.push(IdentifiedDelta {
                            id,
                            delta: ModelDelta {
                                model: content.model.clone(),
                                counts: content.counts,
                                last_offset: offset,
                            },
                        });
                        entry.insert(content);
                        return;
                    }
                    // A client's retry that landed in the same batch counts once.
                    Entry::Occupied(first)
                        if first.get().model == content.model
                            && first.get().counts == content.counts =>
                    {
                        self.duplicates += 1;
                        return;
                    }
                    Entry::Occupied(first) => format!(
                        "id conflict: {:?} came earlier in the partition (offset {}) with other content (model {}, {} successes, {} failures)",
                        domain::observation::truncate_for_message(first.key()),
                        first.get().offset,
                        first.get().model,
                        first.get().counts.successes,
                        first.get().counts.failures,
                    ),
                }
            }
            Ok(obs) => {
                let delta = Counts::new(obs.successes, obs.failures);
                let entry = self
                    .deltas
                    .entry(obs.model.clone())
                    .or_insert((Counts::ZERO, offset));
                match entry.0.checked_add(delta) {
                    Some(sum) => {
                        *entry = (sum, offset);
                        self.observations += obs.successes + obs.failures;
                        if keep_records {
                            self.by_model
                                .entry(obs.model)
                                .or_default()
                                .push(record(headers()));
                        }
                        return;
                    }
                    // Unreachable in practice (a record holds at most 10^6
                    // trials), but never wrap around silently.
                    None => "counts overflow a 64-bit integer within one batch".to_owned(),
                }
            }
            Err(err) => err.to_string(),
        };
        self.poison.push(record(headers()).into_poison(error));
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Takes the identified observations whose ids `reasons` names out of
    /// the batch and returns their records as poison, each with its reason,
    /// in offset order. Their observations are no longer the batch's. An id
    /// the batch does not hold, or holds as an upload's line, is ignored.
    pub fn refuse(&mut self, mut reasons: HashMap<String, String>) -> Vec<Poison> {
        let mut refused = Vec::new();
        self.identified.retain(|i| {
            let Some(reason) = reasons.remove(&i.id) else {
                return true;
            };
            let Some(record) = self.held.remove(&i.id) else {
                return true;
            };
            self.observations -= i.delta.counts.successes + i.delta.counts.failures;
            refused.push(record.into_poison(reason));
            false
        });
        refused.sort_by_key(|p| p.record.offset);
        refused
    }

    /// Takes every observation of the models `unknown` names out of the
    /// batch and returns their records as poison (kept only with
    /// `keep_records`), each with `reason(model)`, in offset order.
    pub fn refuse_models(
        &mut self,
        unknown: &HashSet<ModelId>,
        reason: impl Fn(&ModelId) -> String,
    ) -> Vec<Poison> {
        let mut refused = Vec::new();
        let mut removed = 0;
        self.deltas.retain(|model, (counts, _)| {
            let keep = !unknown.contains(model);
            if !keep {
                removed += counts.successes + counts.failures;
            }
            keep
        });
        self.identified.retain(|i| {
            if !unknown.contains(&i.delta.model) {
                return true;
            }
            removed += i.delta.counts.successes + i.delta.counts.failures;
            if let Some(record) = self.held.remove(&i.id) {
                refused.push(record.into_poison(reason(&i.delta.model)));
            }
            false
        });
        for model in unknown {
            for record in self.by_model.remove(model).unwrap_or_default() {
                refused.push(record.into_poison(reason(model)));
            }
        }
        self.observations -= removed;
        refused.sort_by_key(|p| p.record.offset);
        refused
    }

    /// Every model the batch adds to.
    pub fn models(&self) -> HashSet<ModelId> {
        self.deltas
            .keys()
            .chain(self.identified.iter().map(|i| &i.delta.model))
            .cloned()
            .collect()
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
                true,
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

    #[test]
    fn an_id_repeated_within_a_batch_with_other_content_is_poison_naming_the_first() {
        let batch = batch_of(&[
            r#"{"model":"a","outcome":"w","id":"k"}"#,
            r#"{"model":"b","successes":3,"trials":5,"id":"k"}"#,
            r#"{"model":"a","outcome":"l","id":"k"}"#,
            r#"{"model":"a","outcome":"w","id":"k"}"#,
        ]);
        assert_eq!(batch.identified.len(), 1);
        assert_eq!(batch.duplicates, 1);
        assert_eq!(batch.observations, 1);
        let offsets: Vec<_> = batch.poison.iter().map(|p| p.record.offset).collect();
        assert_eq!(offsets, [1, 2]);
        for poison in &batch.poison {
            assert!(
                poison.error.starts_with("id conflict: \"k\" came earlier")
                    && poison.error.contains("(offset 0)")
                    && poison.error.contains("model a, 1 successes, 0 failures"),
                "{}",
                poison.error
            );
            assert!(poison.record.value.is_some());
        }
    }

    #[test]
    fn a_refused_model_takes_all_its_records_out_and_leaves_the_others() {
        let mut batch = batch_of(&[
            r#"{"model":"gone","outcome":"w"}"#,
            r#"{"model":"kept","outcome":"w"}"#,
            r#"{"model":"gone","successes":2,"trials":3,"id":"x"}"#,
            r#"{"model":"gone","outcome":"l","id":"9f86d081884c7d659a2f:1"}"#,
            r#"{"model":"gone","outcomes":"wl"}"#,
        ]);
        assert_eq!(batch.observations, 8);
        let gone = ModelId::parse("gone").unwrap();
        let refused = batch.refuse_models(&HashSet::from([gone.clone()]), |m| {
            format!("unknown_model: {m}")
        });
        let offsets: Vec<_> = refused.iter().map(|p| p.record.offset).collect();
        assert_eq!(offsets, [0, 2, 3, 4]);
        assert!(refused.iter().all(|p| p.error == "unknown_model: gone"));
        assert_eq!(batch.observations, 1);
        assert_eq!(
            batch.models(),
            HashSet::from([ModelId::parse("kept").unwrap()])
        );
        assert!(batch.identified.is_empty());
    }

    #[test]
    fn refused_ids_leave_the_batch_as_poison_with_their_reasons_and_records() {
        let mut batch = batch_of(&[
            r#"{"model":"a","outcome":"w","id":"x"}"#,
            r#"{"model":"a","successes":2,"trials":3,"id":"y"}"#,
            r#"{"model":"a","outcome":"w","id":"9f86d081884c7d659a2f:1"}"#,
            "w",
        ]);
        assert_eq!(batch.observations, 6);
        let refused = batch.refuse(HashMap::from([
            ("y".to_owned(), "because".to_owned()),
            ("9f86d081884c7d659a2f:1".to_owned(), "never".to_owned()),
            ("unknown".to_owned(), "never".to_owned()),
        ]));
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (refused[0].record.offset, refused[0].error.as_str()),
            (1, "because")
        );
        assert_eq!(
            refused[0].record.value.as_deref(),
            Some(br#"{"model":"a","successes":2,"trials":3,"id":"y"}"#.as_slice())
        );
        let ids: Vec<_> = batch.identified.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["x", "9f86d081884c7d659a2f:1"]);
        assert_eq!(batch.observations, 3);
    }
}
