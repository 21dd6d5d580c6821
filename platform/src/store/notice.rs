//! What the notify channel carries: a comma-separated list of what a commit
//! changed, read by every model service to keep its memory of the current
//! state fresh, and fanned out to the live feed.
//!
//! Model ids (`[a-z0-9][a-z0-9_.-]*`) cannot hold a colon, so the other
//! kinds are told apart by a prefix: `experiment:<id>` (defined, redefined
//! or deleted), `assigned:<id>` (units given arms) and `sync:<token>` (a
//! barrier: see the model service's `current` module). `*` stands for
//! "anything may have changed" (a payload too long for Postgres's 8000
//! bytes).

use domain::model_id::ModelId;

/// One item of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Anything may have changed.
    Everything,
    /// The model's counts, configuration or existence changed.
    Model(ModelId),
    /// The experiment was defined, redefined or deleted.
    Experiment(ModelId),
    /// Units of the experiment were given arms.
    Assigned(ModelId),
    /// A barrier: everything notified before it was committed before it.
    Sync(String),
}

const EXPERIMENT: &str = "experiment:";
const ASSIGNED: &str = "assigned:";
const SYNC: &str = "sync:";

impl Notice {
    /// The items of a payload; items that do not parse are skipped.
    pub fn parse(payload: &str) -> Vec<Notice> {
        if payload.trim() == "*" {
            return vec![Notice::Everything];
        }
        payload
            .split(',')
            .map(str::trim)
            .filter_map(|item| {
                let id = |rest: &str| ModelId::parse(rest).ok();
                if let Some(rest) = item.strip_prefix(EXPERIMENT) {
                    id(rest).map(Notice::Experiment)
                } else if let Some(rest) = item.strip_prefix(ASSIGNED) {
                    id(rest).map(Notice::Assigned)
                } else if let Some(token) = item.strip_prefix(SYNC) {
                    Some(Notice::Sync(token.to_owned()))
                } else {
                    id(item).map(Notice::Model)
                }
            })
            .collect()
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Everything => f.write_str("*"),
            Notice::Model(id) => f.write_str(id.as_str()),
            Notice::Experiment(id) => write!(f, "{EXPERIMENT}{id}"),
            Notice::Assigned(id) => write!(f, "{ASSIGNED}{id}"),
            Notice::Sync(token) => write!(f, "{SYNC}{token}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_written() {
        let id = |s: &str| ModelId::parse(s).unwrap();
        let notices = [
            Notice::Model(id("globe")),
            Notice::Experiment(id("checkout")),
            Notice::Assigned(id("checkout")),
            Notice::Sync("7f-3".into()),
        ];
        let payload = notices.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(Notice::parse(&payload.join(",")), notices);
        assert_eq!(Notice::parse("*"), [Notice::Everything]);
        assert_eq!(
            Notice::parse("globe,Not Valid,experiment:,x:y"),
            [Notice::Model(id("globe"))]
        );
    }
}
