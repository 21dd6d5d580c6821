//! The chaos run's verdict: what was acknowledged against what was counted,
//! per model, and, on a difference, where the log says it arose (ids the
//! log lacks were lost before the consumers; all of them present means the
//! consumers or the store lost or doubled them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Trials and successes per model.
pub type Counts = BTreeMap<String, [u64; 2]>;

/// One model's line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub model: String,
    pub acknowledged: [u64; 2],
    pub counted: [u64; 2],
}

impl Row {
    /// Counted minus acknowledged, trials and successes.
    pub fn difference(&self) -> [i128; 2] {
        [0, 1].map(|i| i128::from(self.counted[i]) - i128::from(self.acknowledged[i]))
    }

    /// `lost` when either count fell short, `doubled` when one went over.
    pub fn mark(&self) -> Option<&'static str> {
        match self.difference() {
            [0, 0] => None,
            [t, s] if t < 0 || s < 0 => Some("lost"),
            _ => Some("doubled"),
        }
    }
}

/// Every model either side names, and the sums of what differs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub rows: Vec<Row>,
    /// Trials counted short of or beyond what was acknowledged, over all models.
    pub lost: u64,
    pub doubled: u64,
    /// The same for successes.
    pub lost_successes: u64,
    pub doubled_successes: u64,
}

/// Compares per model, in the models' order.
pub fn reconcile(acknowledged: &Counts, counted: &Counts) -> Reconciliation {
    let models: BTreeSet<&String> = acknowledged.keys().chain(counted.keys()).collect();
    let mut result = Reconciliation::default();
    for model in models {
        let row = Row {
            model: model.clone(),
            acknowledged: acknowledged.get(model).copied().unwrap_or_default(),
            counted: counted.get(model).copied().unwrap_or_default(),
        };
        let [t, s] = row.difference();
        let short = |d: i128| u64::try_from(-d).unwrap_or(0);
        let over = |d: i128| u64::try_from(d).unwrap_or(0);
        result.lost += short(t);
        result.doubled += over(t);
        result.lost_successes += short(s);
        result.doubled_successes += over(s);
        result.rows.push(row);
    }
    result
}

impl Reconciliation {
    /// Nothing lost, nothing doubled, trials nor successes.
    pub fn is_exact(&self) -> bool {
        self.rows.iter().all(|row| row.mark().is_none())
    }

    /// Trials acknowledged and counted, over all models.
    pub fn totals(&self) -> (u64, u64) {
        self.rows.iter().fold((0, 0), |(a, c), row| {
            (a + row.acknowledged[0], c + row.counted[0])
        })
    }

    /// The table: `model  acknowledged  counted  difference`, trials/successes,
    /// columns right-aligned, a row that differs marked `<-- lost` or
    /// `<-- doubled`.
    pub fn table(&self) -> String {
        let header = ["model", "acknowledged", "counted", "difference"].map(String::from);
        let cells: Vec<([String; 4], Option<&str>)> = self
            .rows
            .iter()
            .map(|row| {
                let [t, s] = row.difference();
                let difference = match row.mark() {
                    None => "0".to_owned(),
                    Some(_) => format!("{t:+}/{s:+}"),
                };
                let pair = |[a, b]: [u64; 2]| format!("{a}/{b}");
                let line = [
                    row.model.clone(),
                    pair(row.acknowledged),
                    pair(row.counted),
                    difference,
                ];
                (line, row.mark())
            })
            .collect();
        let widths: Vec<usize> = (0..4)
            .map(|i| {
                cells
                    .iter()
                    .map(|(line, _)| line[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut table = String::new();
        for (line, mark) in std::iter::once((header.clone(), None)).chain(cells) {
            let _ = write!(table, "{:<w$}", line[0], w = widths[0]);
            for i in 1..4 {
                let _ = write!(table, "  {:>w$}", line[i], w = widths[i]);
            }
            if let Some(mark) = mark {
                let _ = write!(table, "  <-- {mark}");
            }
            table.push('\n');
        }
        table
    }
}

/// What the topic holds: how many records carry each id, and how many carry none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogIds {
    pub copies: HashMap<String, u64>,
    pub without_id: u64,
}

impl LogIds {
    /// From the records' values, one JSON object each: its `"id"` (a string,
    /// or any other JSON value as its text); a value that is not an object
    /// with an id counts as without one.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut log = Self::default();
        for value in values {
            let id = serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .and_then(|v| match v.get("id")? {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(id) => Some(id.clone()),
                    other => Some(other.to_string()),
                });
            match id {
                Some(id) => *log.copies.entry(id).or_default() += 1,
                None => log.without_id += 1,
            }
        }
        log
    }

    pub fn records(&self) -> u64 {
        self.copies.values().sum::<u64>() + self.without_id
    }

    /// `; the log holds N records for M ids: K copies, each to be skipped by the consumers`.
    pub fn summary(&self) -> String {
        let records = self.records();
        let ids = self.copies.len() as u64;
        let mut text = format!(
            "; the log holds {records} records for {ids} ids: {} copies, each to be skipped by the consumers",
            records - ids - self.without_id
        );
        if self.without_id > 0 {
            let _ = write!(text, " ({} records without an id!)", self.without_id);
        }
        text
    }

    /// For a difference: which acknowledged ids the log lacks (lost before
    /// the consumers: a 202, or kcat's word, for a record the broker does
    /// not have) and which ids it holds that were never acknowledged.
    pub fn where_it_went(&self, acknowledged_ids: &[String]) -> Vec<String> {
        let acknowledged: BTreeSet<&str> = acknowledged_ids.iter().map(String::as_str).collect();
        let missing: Vec<&str> = acknowledged_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !self.copies.contains_key(*id))
            .collect();
        let mut unknown: Vec<&str> = self
            .copies
            .keys()
            .map(String::as_str)
            .filter(|id| !acknowledged.contains(id))
            .collect();
        unknown.sort_unstable();
        let mut lines = Vec::new();
        if missing.is_empty() {
            lines.push(
                "every acknowledged id is in the log: the difference arose in the consumers or the store"
                    .to_owned(),
            );
        } else {
            lines.push(format!(
                "{} acknowledged ids are not in the log (lost before the consumers), e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        if !unknown.is_empty() {
            lines.push(format!(
                "{} ids in the log were never acknowledged (the load gave up on them), e.g. {:?}",
                unknown.len(),
                &unknown[..unknown.len().min(5)]
            ));
        }
        if self.without_id > 0 {
            lines.push(format!(
                "{} records in the log carry no id",
                self.without_id
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rows: &[(&str, u64, u64)]) -> Counts {
        rows.iter()
            .map(|&(m, t, s)| (m.to_owned(), [t, s]))
            .collect()
    }

    #[test]
    fn equal_counts_are_exact_and_print_a_zero_difference() {
        let both = counts(&[("m00", 10, 4), ("m01", 3, 3)]);
        let result = reconcile(&both, &both);
        assert!(result.is_exact());
        assert_eq!(result.totals(), (13, 13));
        assert_eq!(
            result.table(),
            "\
model  acknowledged  counted  difference
m00            10/4     10/4           0
m01             3/3      3/3           0
"
        );
    }

    #[test]
    fn a_shortfall_is_lost_and_an_excess_doubled_per_model() {
        let acknowledged = counts(&[("m00", 10, 4), ("m01", 3, 3), ("m02", 5, 5)]);
        // m02 has fewer successes only; m03 was counted but never acknowledged.
        let counted = counts(&[("m00", 8, 4), ("m01", 5, 4), ("m02", 5, 4), ("m03", 1, 0)]);
        let result = reconcile(&acknowledged, &counted);
        assert!(!result.is_exact());
        let marks: Vec<_> = result.rows.iter().map(Row::mark).collect();
        assert_eq!(
            marks,
            [Some("lost"), Some("doubled"), Some("lost"), Some("doubled")]
        );
        assert_eq!((result.lost, result.doubled), (2, 3));
        assert_eq!((result.lost_successes, result.doubled_successes), (1, 1));
        let table = result.table();
        assert!(
            table.contains("m00            10/4      8/4       -2/+0  <-- lost\n"),
            "{table}"
        );
        assert!(
            table.contains("m03             0/0      1/0       +1/+0  <-- doubled\n"),
            "{table}"
        );
    }

    #[test]
    fn the_log_tells_lost_before_the_consumers_from_lost_in_them() {
        let log = LogIds::from_values([
            r#"{"id":"a","model":"m00"}"#,
            r#"{"id":"a","model":"m00"}"#,
            r#"{"id":"b"}"#,
            r#"{"model":"m00"}"#,
            "not json",
        ]);
        assert_eq!(log.records(), 5);
        assert_eq!(
            log.summary(),
            "; the log holds 5 records for 2 ids: 1 copies, each to be skipped by the consumers (2 records without an id!)"
        );
        let all_there = log.where_it_went(&["a".into(), "b".into()]);
        assert!(all_there[0].starts_with("every acknowledged id is in the log"));
        let lacking = log.where_it_went(&["a".into(), "c".into()]);
        assert_eq!(
            lacking[0],
            r#"1 acknowledged ids are not in the log (lost before the consumers), e.g. ["c"]"#
        );
        assert!(lacking[1].starts_with("1 ids in the log were never acknowledged"));
        assert_eq!(lacking[2], "2 records in the log carry no id");
    }
}
