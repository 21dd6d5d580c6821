//! What an experiment is: its arms, its control, the thresholds its
//! decision uses and how its bandit allocates, checked and defaulted in one
//! place ([`ExperimentDraft::validate`]), so a stored [`ExperimentSpec`] is
//! always one the engine accepts.
//!
//! The service reads a draft from a request body and stores the spec
//! `platform::store` keeps; neither checks anything again.

use crate::bayes::{
    check_planned_weights, BanditOptions, ExperimentError, DEFAULT_ROPE, MAX_ARMS, MIN_ARMS,
};
use crate::model_id::{ModelId, ModelIdError};
use crate::number::Shown;

/// The absolute loss on p worth caring about, unless the experiment says.
pub const DEFAULT_THRESHOLD_OF_CARING: f64 = 0.001;

/// How an experiment's bandit allocates: the engine's own options, stored
/// as they are (JSON with the same field names).
pub type BanditConfig = BanditOptions;

/// The bandit's burn-in, floor and rule unless the experiment says.
pub const DEFAULT_BANDIT: BanditConfig = BanditConfig {
    min_trials: 100,
    floor: 0.01,
    top_two: false,
};

/// An experiment as stored, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec {
    pub arms: Vec<ModelId>,
    pub control: ModelId,
    pub threshold_of_caring: f64,
    pub rope: f64,
    pub planned_weights: Option<Vec<f64>>,
    pub bandit: BanditConfig,
}

impl ExperimentSpec {
    /// The control's position among the arms (validated on the way in).
    pub fn control_index(&self) -> usize {
        self.arms
            .iter()
            .position(|a| *a == self.control)
            .unwrap_or(0)
    }
}

/// An experiment as a client wrote it: every field but the arms optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperimentDraft {
    pub arms: Vec<String>,
    pub control: Option<String>,
    pub threshold_of_caring: Option<f64>,
    pub rope: Option<f64>,
    pub planned_weights: Option<Vec<f64>>,
    pub bandit: BanditDraft,
}

/// A bandit as a client wrote it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BanditDraft {
    pub min_trials: Option<u64>,
    pub floor: Option<f64>,
    pub top_two: Option<bool>,
}

/// Why a draft is not an experiment. Each message is the one the client
/// reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Too few or too many arms, or planned weights the sample-ratio check
    /// refuses.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    #[error("arm {raw:?}: {error}")]
    Arm { raw: String, error: ModelIdError },
    #[error("arm {0} is listed twice")]
    DuplicateArm(ModelId),
    #[error("control: {0}")]
    Control(ModelIdError),
    #[error("the control {0} is not one of the arms")]
    ControlNotAnArm(ModelId),
    #[error("threshold_of_caring must be greater than 0 and at most 1, got {}", Shown(*.0))]
    Threshold(f64),
    #[error("rope must be at least 0 and below 1, got {}", Shown(*.0))]
    Rope(f64),
    #[error("planned_weights has {weights} weights for {arms} arms")]
    PlannedWeights { weights: usize, arms: usize },
    #[error("planned weights must be positive numbers, got {}", Shown(*.0))]
    PlannedWeight(f64),
    #[error("bandit.min_trials must be at most {max}, got {0}", max = i64::MAX)]
    MinTrials(u64),
    #[error(
        "bandit.floor must be between 0 and 1/{arms} for {arms} arms, got {}",
        Shown(*.floor)
    )]
    Floor { floor: f64, arms: usize },
}

impl ExperimentDraft {
    /// The spec to store, with the defaults filled in, or the first thing
    /// wrong with the draft.
    pub fn validate(self) -> Result<ExperimentSpec, SpecError> {
        let k = self.arms.len();
        if !(MIN_ARMS..=MAX_ARMS).contains(&k) {
            return Err(ExperimentError::Arms(k).into());
        }
        let mut arms = Vec::with_capacity(k);
        for raw in &self.arms {
            let arm = ModelId::parse(raw).map_err(|error| SpecError::Arm {
                raw: raw.clone(),
                error,
            })?;
            if arms.contains(&arm) {
                return Err(SpecError::DuplicateArm(arm));
            }
            arms.push(arm);
        }
        let control = match &self.control {
            Some(raw) => {
                let control = ModelId::parse(raw).map_err(SpecError::Control)?;
                if !arms.contains(&control) {
                    return Err(SpecError::ControlNotAnArm(control));
                }
                control
            }
            None => arms[0].clone(),
        };
        let threshold_of_caring = self
            .threshold_of_caring
            .unwrap_or(DEFAULT_THRESHOLD_OF_CARING);
        if !(threshold_of_caring > 0.0 && threshold_of_caring <= 1.0) {
            return Err(SpecError::Threshold(threshold_of_caring));
        }
        let rope = self.rope.unwrap_or(DEFAULT_ROPE);
        if !(0.0..1.0).contains(&rope) {
            return Err(SpecError::Rope(rope));
        }
        if let Some(weights) = &self.planned_weights {
            if weights.len() != k {
                return Err(SpecError::PlannedWeights {
                    weights: weights.len(),
                    arms: k,
                });
            }
            if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
                return Err(SpecError::PlannedWeight(*w));
            }
            // The sample-ratio check's own rule: any scale, but no weight a
            // trillion times below the largest.
            check_planned_weights(weights)?;
        }
        let bandit = self.bandit.validate(k)?;
        Ok(ExperimentSpec {
            arms,
            control,
            threshold_of_caring,
            rope,
            planned_weights: self.planned_weights,
            bandit,
        })
    }
}

impl BanditDraft {
    /// The bandit of an experiment of `arms` arms, with the defaults filled in.
    pub fn validate(self, arms: usize) -> Result<BanditConfig, SpecError> {
        let bandit = BanditConfig {
            min_trials: self.min_trials.unwrap_or(DEFAULT_BANDIT.min_trials),
            floor: self.floor.unwrap_or(DEFAULT_BANDIT.floor),
            top_two: self.top_two.unwrap_or(DEFAULT_BANDIT.top_two),
        };
        // Stored as BIGINT-range JSON and compared with trial counts.
        if i64::try_from(bandit.min_trials).is_err() {
            return Err(SpecError::MinTrials(bandit.min_trials));
        }
        if !(bandit.floor >= 0.0 && bandit.floor * arms as f64 <= 1.0) {
            return Err(SpecError::Floor {
                floor: bandit.floor,
                arms,
            });
        }
        Ok(bandit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(arms: &[&str]) -> ExperimentDraft {
        ExperimentDraft {
            arms: arms.iter().map(|a| (*a).to_owned()).collect(),
            ..ExperimentDraft::default()
        }
    }

    fn refusal(draft: ExperimentDraft) -> String {
        match draft.validate() {
            Ok(spec) => panic!("accepted {spec:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_draft_with_arms_only_gets_every_default() {
        let spec = draft(&["a", "b"])
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.control.as_str(), "a");
        assert_eq!(spec.control_index(), 0);
        assert_eq!(spec.threshold_of_caring, DEFAULT_THRESHOLD_OF_CARING);
        assert_eq!(spec.rope, DEFAULT_ROPE);
        assert_eq!(spec.bandit, DEFAULT_BANDIT);
        assert_eq!(spec.planned_weights, None);
    }

    #[test]
    fn each_mistake_is_named_in_the_message_the_client_reads() {
        assert_eq!(
            refusal(draft(&["a"])),
            "an experiment has between 2 and 20 arms, got 1"
        );
        assert_eq!(refusal(draft(&["a", "a"])), "arm a is listed twice");
        assert!(refusal(draft(&["a", "B"])).starts_with("arm \"B\": "));
        let mut d = draft(&["a", "b"]);
        d.control = Some("c".into());
        assert_eq!(refusal(d), "the control c is not one of the arms");
        let mut d = draft(&["a", "b"]);
        d.threshold_of_caring = Some(0.0);
        assert_eq!(
            refusal(d),
            "threshold_of_caring must be greater than 0 and at most 1, got 0"
        );
        let mut d = draft(&["a", "b"]);
        d.rope = Some(1.0);
        assert_eq!(refusal(d), "rope must be at least 0 and below 1, got 1");
        let mut d = draft(&["a", "b"]);
        d.planned_weights = Some(vec![1.0]);
        assert_eq!(refusal(d), "planned_weights has 1 weights for 2 arms");
        let mut d = draft(&["a", "b"]);
        d.planned_weights = Some(vec![1.0, -1.0]);
        assert_eq!(
            refusal(d),
            "planned weights must be positive numbers, got -1"
        );
        let mut d = draft(&["a", "b"]);
        d.bandit.min_trials = Some(u64::MAX);
        assert_eq!(
            refusal(d),
            format!(
                "bandit.min_trials must be at most {}, got {}",
                i64::MAX,
                u64::MAX
            )
        );
        let mut d = draft(&["a", "b"]);
        d.bandit.floor = Some(0.6);
        assert_eq!(
            refusal(d),
            "bandit.floor must be between 0 and 1/2 for 2 arms, got 0.6"
        );
    }
}
