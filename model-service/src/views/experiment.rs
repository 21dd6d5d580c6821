//! The JSON bodies of the experiment routes, and how each is computed from
//! the arms' snapshots by the engine (`domain::bayes::experiment` and
//! friends): like the rest of `views`, it copies the engine's numbers and
//! computes no statistic of its own.

use chrono::{DateTime, Utc};
use domain::bayes::{
    bandit_weights, decide, experiment, pick_arm, srm, BayesError, Decision, ExperimentError,
    ExperimentFigures, ExperimentOptions, Interval, Posterior, Srm, Summary, Verdict,
};
use domain::experiment::{BanditConfig, BanditDraft, ExperimentDraft, ExperimentSpec};
use domain::ModelId;
use platform::store::ExperimentRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{trials, Snapshot};

/// The body of `PUT /experiments/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentBody {
    /// The arms: 2 to 20 distinct model ids (models that do not exist yet
    /// are created with the default prior).
    #[schema(schema_with = arms_schema)]
    pub arms: Vec<String>,
    /// The arm the others are compared with; the first arm when absent.
    #[schema(example = "checkout-a")]
    pub control: Option<String>,
    /// The expected loss (absolute, on p) below which an arm may be shipped:
    /// greater than 0 and at most 1 (default 0.001).
    #[schema(exclusive_minimum = 0, maximum = 1, example = 0.001)]
    pub threshold_of_caring: Option<f64>,
    /// The region of practical equivalence: a relative uplift within ±rope
    /// counts as no difference. 0 to below 1 (default 0.01, ±1 %).
    #[schema(minimum = 0, exclusive_maximum = 1, example = 0.01)]
    pub rope: Option<f64>,
    /// The planned split, one positive weight an arm (any scale; none below
    /// 1e-12 of the largest), for the sample-ratio-mismatch check; no check
    /// without it.
    #[schema(example = json!([1, 1, 1]))]
    pub planned_weights: Option<Vec<f64>>,
    pub bandit: Option<BanditBody>,
}

/// `arms` in the OpenAPI document: 2 to 20 distinct model ids.
fn arms_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(domain::schema::MODEL_ID_PATTERN)),
        )
        .min_items(Some(domain::bayes::MIN_ARMS))
        .max_items(Some(domain::bayes::MAX_ARMS))
        .unique_items(true)
        .description(Some(
            "The arms: 2 to 20 distinct model ids (models that do not exist yet are created \
             with the default prior).",
        ))
        .examples([serde_json::json!([
            "checkout-a",
            "checkout-b",
            "checkout-c"
        ])])
        .build()
}

/// How `/weights` and `/assignments` allocate units.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanditBody {
    /// Equal weights until every arm has this many trials (default 100).
    #[schema(minimum = 0, maximum = 9223372036854775807_i64, example = 100)]
    #[serde(default, deserialize_with = "domain::whole::option_u64")]
    pub min_trials: Option<u64>,
    /// The least weight of any arm, 0 to 1/arms (default 0.01).
    #[schema(minimum = 0, maximum = 0.5, example = 0.01)]
    pub floor: Option<f64>,
    /// Top-two Thompson sampling instead of Thompson sampling (default false).
    pub top_two: Option<bool>,
}

impl From<ExperimentBody> for ExperimentDraft {
    /// The draft `domain` checks and fills in (`ExperimentDraft::validate`).
    fn from(body: ExperimentBody) -> Self {
        let bandit = body.bandit.unwrap_or_default();
        ExperimentDraft {
            arms: body.arms,
            control: body.control,
            threshold_of_caring: body.threshold_of_caring,
            rope: body.rope,
            planned_weights: body.planned_weights,
            bandit: BanditDraft {
                min_trials: bandit.min_trials,
                floor: bandit.floor,
                top_two: bandit.top_two,
            },
        }
    }
}

/// The bandit's settings as answered.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct BanditView {
    pub min_trials: u64,
    pub floor: f64,
    pub top_two: bool,
}

impl From<BanditConfig> for BanditView {
    fn from(b: BanditConfig) -> Self {
        BanditView {
            min_trials: b.min_trials,
            floor: b.floor,
            top_two: b.top_two,
        }
    }
}

/// An experiment's definition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentInfo {
    #[schema(value_type = String, example = "checkout")]
    pub experiment: ModelId,
    #[schema(value_type = Vec<String>)]
    pub arms: Vec<ModelId>,
    #[schema(value_type = String)]
    pub control: ModelId,
    pub threshold_of_caring: f64,
    pub rope: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_weights: Option<Vec<f64>>,
    pub bandit: BanditView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&ExperimentRecord> for ExperimentInfo {
    fn from(r: &ExperimentRecord) -> Self {
        ExperimentInfo {
            experiment: r.id.clone(),
            arms: r.spec.arms.clone(),
            control: r.spec.control.clone(),
            threshold_of_caring: r.spec.threshold_of_caring,
            rope: r.spec.rope,
            planned_weights: r.spec.planned_weights.clone(),
            bandit: r.spec.bandit.into(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A page of experiments, in id order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentInfo>,
    /// Pass as `?after=` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// The relative uplift of an arm over the control, p_arm / p_control − 1.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct UpliftView {
    /// E[uplift]; null when the control's posterior gives E[1/p] no finite
    /// value (no success yet under a prior with density at p = 0).
    pub mean: Option<f64>,
    pub median: f64,
    /// The highest-density interval at `mass`.
    pub hpdi: Interval,
    /// P(−rope ≤ uplift ≤ rope): the probability of no meaningful difference.
    pub prob_in_rope: f64,
}

/// One arm's counts, posterior and decision figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArmResult {
    #[schema(value_type = String)]
    pub model: ModelId,
    pub control: bool,
    pub successes: u64,
    pub failures: u64,
    pub trials: u64,
    /// The arm's own version answered for.
    pub version: u64,
    /// Units a bandit assigned to this arm (now, whatever version is answered).
    pub assignments: u64,
    pub summary: Summary,
    /// P(this arm has the highest p): "chance to win".
    pub prob_best: f64,
    /// E[max_j p_j − p_arm]: what choosing this arm costs on average ("risk").
    pub expected_loss: f64,
    /// The expected loss over E[p_arm].
    pub relative_loss: f64,
    /// P(p_arm > p_control); absent for the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prob_beats_control: Option<f64>,
    /// The uplift over the control; absent for the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplift: Option<UpliftView>,
}

/// What to do now, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    /// `ship`, `no_meaningful_difference` or `keep_running`.
    #[schema(example = "ship")]
    pub decision: &'static str,
    /// The arm to ship, with `ship`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub arm: Option<ModelId>,
    /// One sentence with the figures behind it.
    pub reason: String,
}

impl DecisionView {
    fn new(verdict: Verdict, arms: &[ModelId]) -> Self {
        let (decision, arm) = match verdict.decision {
            Decision::Ship { arm } => ("ship", arms.get(arm).cloned()),
            Decision::NoMeaningfulDifference => ("no_meaningful_difference", None),
            Decision::KeepRunning => ("keep_running", None),
        };
        DecisionView {
            decision,
            arm,
            reason: verdict.reason,
        }
    }
}

/// A sample-ratio-mismatch check: Pearson's chi-square of the observed
/// counts against the planned weights.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct SrmView {
    pub chi_square: f64,
    pub degrees_of_freedom: u32,
    pub p_value: f64,
    /// p_value below 0.001: the split is not what was planned; distrust the figures.
    pub flagged: bool,
}

impl From<Srm> for SrmView {
    fn from(s: Srm) -> Self {
        SrmView {
            chi_square: s.chi_square,
            degrees_of_freedom: s.degrees_of_freedom,
            p_value: s.p_value,
            flagged: s.flagged,
        }
    }
}

/// The time window an experiment's counts come from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ExperimentWindow {
    pub since: DateTime<Utc>,
    /// The experiment's version at `since`.
    pub from_version: u64,
}

/// An experiment's figures and decision at one version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentView {
    #[serde(flatten)]
    pub info: ExperimentInfo,
    /// Commits that touched an arm, up to the point answered: the
    /// experiment's version.
    pub version: u64,
    /// When the last of them was applied (absent before any data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<ExperimentWindow>,
    /// The mass of every interval.
    pub mass: f64,
    /// E[max_j p_j].
    pub expected_max: f64,
    pub results: Vec<ArmResult>,
    pub decision: DecisionView,
    /// The arms' trials against `planned_weights` (absent without them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srm: Option<SrmView>,
    /// The units assigned against `planned_weights` (absent without them or
    /// before any assignment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_srm: Option<SrmView>,
}

/// The engine's answer for a set of arm snapshots: what is cached.
#[derive(Debug, Clone)]
pub struct Figures {
    pub figures: ExperimentFigures,
    pub summaries: Vec<Summary>,
    pub verdict: Verdict,
}

/// Why the engine could not answer: a posterior it cannot form, or options
/// it refuses.
#[derive(Debug, thiserror::Error)]
pub enum FiguresError {
    #[error(transparent)]
    Posterior(#[from] BayesError),
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
}

impl Figures {
    /// P(best), losses, uplift and the decision for `arms` (snapshots in the
    /// spec's order).
    pub fn compute(
        spec: &ExperimentSpec,
        arms: &[Snapshot],
        mass: f64,
    ) -> Result<Self, FiguresError> {
        let posteriors = arms
            .iter()
            .map(Snapshot::posterior)
            .collect::<Result<Vec<Posterior<'_>>, _>>()?;
        let control = spec.control_index();
        let figures = experiment(
            &posteriors,
            control,
            &ExperimentOptions {
                mass,
                rope: spec.rope,
            },
        )?;
        let summaries = posteriors
            .iter()
            .map(|p| p.summary(mass))
            .collect::<Result<Vec<_>, _>>()?;
        let verdict = decide(
            &figures,
            &spec.arms.iter().map(ModelId::as_str).collect::<Vec<_>>(),
            control,
            spec.threshold_of_caring,
            mass,
        );
        Ok(Figures {
            figures,
            summaries,
            verdict,
        })
    }
}

/// Where in its history an experiment is answered for.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub version: u64,
    pub as_of: Option<DateTime<Utc>>,
    pub window: Option<ExperimentWindow>,
}

impl ExperimentView {
    pub fn new(
        record: &ExperimentRecord,
        arms: &[Snapshot],
        point: Point,
        assignments: &[u64],
        figures: &Figures,
        mass: f64,
    ) -> Result<Self, ExperimentError> {
        let spec = &record.spec;
        let control = spec.control_index();
        let results = arms
            .iter()
            .zip(&figures.figures.arms)
            .zip(&figures.summaries)
            .enumerate()
            .map(|(i, ((snapshot, arm), summary))| ArmResult {
                model: snapshot.model.clone(),
                control: i == control,
                successes: snapshot.counts.successes,
                failures: snapshot.counts.failures,
                trials: trials(snapshot.counts),
                version: snapshot.version,
                assignments: assignments.get(i).copied().unwrap_or(0),
                summary: *summary,
                prob_best: arm.prob_best,
                expected_loss: arm.expected_loss,
                relative_loss: arm.relative_loss,
                prob_beats_control: arm.prob_beats_control,
                uplift: arm.uplift.map(|u| UpliftView {
                    mean: u.mean,
                    median: u.median,
                    hpdi: u.hpdi,
                    prob_in_rope: u.prob_in_rope,
                }),
            })
            .collect::<Vec<_>>();
        let (srm_view, assignment_srm) = match &spec.planned_weights {
            Some(weights) => {
                let observed: Vec<u64> = results.iter().map(|r| r.trials).collect();
                // Weights stored before today's rules (one a trillion times
                // below the largest) get no check rather than a failed read.
                let by_trials = srm(&observed, weights).ok().map(SrmView::from);
                let by_units = if assignments.iter().any(|n| *n > 0) {
                    srm(assignments, weights).ok().map(SrmView::from)
                } else {
                    None
                };
                (by_trials, by_units)
            }
            None => (None, None),
        };
        Ok(ExperimentView {
            info: ExperimentInfo::from(record),
            version: point.version,
            as_of: point.as_of,
            window: point.window,
            mass,
            expected_max: figures.figures.expected_max,
            results,
            decision: DecisionView::new(figures.verdict.clone(), &spec.arms),
            srm: srm_view,
            assignment_srm,
        })
    }
}

/// One point of an experiment's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentHistoryPoint {
    /// The experiment's version after this commit.
    pub version: u64,
    /// The arm the commit touched (absent for version 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub arm: Option<ModelId>,
    /// When it was applied (absent for version 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
    /// Trials of each arm then, in the arms' order.
    pub trials: Vec<u64>,
    /// P(best) of each arm then.
    pub prob_best: Vec<f64>,
    /// Expected loss of each arm then.
    pub expected_loss: Vec<f64>,
    /// `ship`, `no_meaningful_difference` or `keep_running`, with `arm` for `ship`.
    pub decision: DecisionView,
}

/// A page of an experiment's history, computed with the arms' current priors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentHistoryView {
    #[schema(value_type = String)]
    pub experiment: ModelId,
    #[schema(value_type = Vec<String>)]
    pub arms: Vec<ModelId>,
    pub mass: f64,
    pub points: Vec<ExperimentHistoryPoint>,
    /// Pass as `?after=` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

impl ExperimentHistoryPoint {
    pub fn new(
        version: u64,
        arm: Option<ModelId>,
        applied_at: Option<DateTime<Utc>>,
        arms: &[Snapshot],
        figures: &Figures,
        spec: &ExperimentSpec,
    ) -> Self {
        ExperimentHistoryPoint {
            version,
            arm,
            applied_at,
            trials: arms.iter().map(|s| trials(s.counts)).collect(),
            prob_best: figures.figures.arms.iter().map(|a| a.prob_best).collect(),
            expected_loss: figures
                .figures
                .arms
                .iter()
                .map(|a| a.expected_loss)
                .collect(),
            decision: DecisionView::new(figures.verdict.clone(), &spec.arms),
        }
    }
}

/// One arm's allocation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArmWeight {
    #[schema(value_type = String)]
    pub model: ModelId,
    /// The share of new units this arm gets.
    pub weight: f64,
    pub prob_best: f64,
    pub trials: u64,
}

/// The bandit's allocation at the experiment's current version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeightsView {
    #[schema(value_type = String)]
    pub experiment: ModelId,
    /// The version the weights were computed from.
    pub version: u64,
    /// True while some arm has fewer than `bandit.min_trials` trials: equal weights.
    pub burn_in: bool,
    pub bandit: BanditView,
    pub arms: Vec<ArmWeight>,
}

impl WeightsView {
    pub fn new(
        record: &ExperimentRecord,
        arms: &[Snapshot],
        version: u64,
        figures: &Figures,
    ) -> Result<Self, ExperimentError> {
        let bandit = record.spec.bandit;
        let prob_best: Vec<f64> = figures.figures.arms.iter().map(|a| a.prob_best).collect();
        let counts: Vec<u64> = arms.iter().map(|s| trials(s.counts)).collect();
        let weights = bandit_weights(&prob_best, &counts, &bandit)?;
        Ok(WeightsView {
            experiment: record.id.clone(),
            version,
            burn_in: weights.burn_in,
            bandit: bandit.into(),
            arms: arms
                .iter()
                .zip(weights.weights)
                .zip(prob_best.iter().zip(counts))
                .map(|((s, weight), (prob_best, trials))| ArmWeight {
                    model: s.model.clone(),
                    weight,
                    prob_best: *prob_best,
                    trials,
                })
                .collect(),
        })
    }

    /// The arm a unit whose draw is `u` (`domain::bayes::unit_draw`) falls into.
    pub fn pick(&self, u: f64) -> usize {
        let weights: Vec<f64> = self.arms.iter().map(|a| a.weight).collect();
        pick_arm(&weights, u)
    }
}

/// The body of `POST /experiments/{id}/assignments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    /// The unit to assign (a user, a session): 1 to 255 characters, none of
    /// them a control character.
    #[schema(
        example = "user-42",
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub unit: String,
}

/// A unit's arm.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentView {
    #[schema(value_type = String)]
    pub experiment: ModelId,
    pub unit: String,
    #[schema(value_type = String)]
    pub arm: ModelId,
    pub assigned_at: DateTime<Utc>,
    /// False when the unit had been assigned before (the same arm again).
    pub new: bool,
    /// The version of the weights a new assignment was drawn with.
    pub version: u64,
}
