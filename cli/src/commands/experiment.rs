//! `bayes experiment <id>`: the model service's `GET /experiments/{id}` as a
//! table of arms, then the decision and the sample-ratio check.

use reqwest::Method;
use serde::Deserialize;

use super::posterior::Interval;
use super::{print, print_json, CommandError};
use crate::client::Services;
use crate::table::{interval, mass_label, percent, prob, small, Table};

/// The parts of an experiment this client shows.
#[derive(Debug, Deserialize)]
struct ExperimentView {
    experiment: String,
    version: u64,
    mass: f64,
    results: Vec<ArmResult>,
    decision: Decision,
    srm: Option<Srm>,
}

#[derive(Debug, Deserialize)]
struct ArmResult {
    model: String,
    control: bool,
    trials: u64,
    successes: u64,
    summary: Mean,
    prob_best: f64,
    expected_loss: f64,
    prob_beats_control: Option<f64>,
    uplift: Option<Uplift>,
}

#[derive(Debug, Deserialize)]
struct Mean {
    mean: f64,
}

#[derive(Debug, Deserialize)]
struct Uplift {
    median: f64,
    hpdi: Interval,
    prob_in_rope: f64,
}

#[derive(Debug, Deserialize)]
struct Decision {
    decision: String,
    arm: Option<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct Srm {
    chi_square: f64,
    degrees_of_freedom: u32,
    p_value: f64,
    flagged: bool,
}

/// The placeholder of a figure an arm does not have (the control's uplift).
const NONE: &str = "-";

pub async fn experiment(services: &Services, id: &str, json: bool) -> Result<(), CommandError> {
    let service = &services.model;
    let value: serde_json::Value = service
        .json(service.request(Method::GET, &["experiments", id]))
        .await?;
    if json {
        return print_json(&value);
    }
    let view: ExperimentView = serde_json::from_value(value).map_err(|e| service.unexpected(e))?;
    print(&render(&view))
}

fn render(view: &ExperimentView) -> String {
    let mass = mass_label(view.mass);
    let hpdi = format!("UPLIFT {mass} HPDI");
    let mut table = Table::new(&[
        "ARM",
        "TRIALS",
        "SUCCESSES",
        "MEAN",
        "P(BEST)",
        "EXP. LOSS",
        "P(>CONTROL)",
        "UPLIFT",
        &hpdi,
        "P(IN ROPE)",
    ]);
    for arm in &view.results {
        let name = if arm.control {
            format!("{} (control)", arm.model)
        } else {
            arm.model.clone()
        };
        let (median, hpdi, rope) = match &arm.uplift {
            Some(u) => (
                percent(u.median),
                interval(u.hpdi.lower, u.hpdi.upper, percent),
                prob(u.prob_in_rope),
            ),
            None => (NONE.into(), NONE.into(), NONE.into()),
        };
        table.row(vec![
            name,
            arm.trials.to_string(),
            arm.successes.to_string(),
            prob(arm.summary.mean),
            prob(arm.prob_best),
            small(arm.expected_loss),
            arm.prob_beats_control.map_or_else(|| NONE.into(), prob),
            median,
            hpdi,
            rope,
        ]);
    }
    let decision = match &view.decision.arm {
        Some(arm) => format!("{} {arm}", view.decision.decision.replace('_', " ")),
        None => view.decision.decision.replace('_', " "),
    };
    let srm = match &view.srm {
        None => "not checked (no planned weights)".to_owned(),
        Some(srm) => {
            let verdict = if srm.flagged {
                "MISMATCH: the split is not what was planned; distrust the figures"
            } else {
                "as planned"
            };
            format!(
                "{verdict} (p = {}, chi-square {:.2}, {} df)",
                prob(srm.p_value),
                srm.chi_square,
                srm.degrees_of_freedom
            )
        }
    };
    format!(
        "experiment {} (version {})\n{}\ndecision: {decision}: {}\nsample ratio: {srm}\n",
        view.experiment,
        view.version,
        table.render(),
        view.decision.reason
    )
}
