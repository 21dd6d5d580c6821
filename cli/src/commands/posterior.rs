//! `bayes posterior <model>`: the model service's
//! `GET /models/{id}/posterior?grid=false` as name/value lines, or its JSON.

use reqwest::Method;
use serde::Deserialize;

use super::{print, print_json, CommandError};
use crate::client::{ClientError, Service, Services};
use crate::table::{self, interval, mass_label, prob};

/// The parts of a posterior this client shows.
#[derive(Debug, Deserialize)]
pub(super) struct PosteriorView {
    pub successes: u64,
    pub failures: u64,
    pub trials: u64,
    pub version: u64,
    pub updated_at: String,
    pub summary: Summary,
}

#[derive(Debug, Deserialize)]
pub(super) struct Summary {
    pub mean: f64,
    pub sd: f64,
    pub median: f64,
    pub mass: f64,
    pub pi: Interval,
    pub hpdi: Interval,
}

#[derive(Debug, Deserialize)]
pub(super) struct Interval {
    pub lower: f64,
    pub upper: f64,
}

pub async fn posterior(
    services: &Services,
    model: &str,
    mass: Option<f64>,
    version: Option<u64>,
    json: bool,
) -> Result<(), CommandError> {
    let value = fetch(&services.model, model, mass, version).await?;
    if json {
        return print_json(&value);
    }
    let view: PosteriorView =
        serde_json::from_value(value).map_err(|e| services.model.unexpected(e))?;
    print(&render(model, &view))
}

/// The posterior's JSON, without the display grid.
pub(super) async fn fetch(
    service: &Service,
    model: &str,
    mass: Option<f64>,
    version: Option<u64>,
) -> Result<serde_json::Value, ClientError> {
    let mut query = vec![("grid", "false".to_owned())];
    if let Some(mass) = mass {
        query.push(("mass", mass.to_string()));
    }
    if let Some(version) = version {
        query.push(("version", version.to_string()));
    }
    let request = service
        .request(Method::GET, &["models", model, "posterior"])
        .query(&query);
    service.json(request).await
}

/// The posterior as aligned name/value lines.
pub(super) fn render(model: &str, view: &PosteriorView) -> String {
    let s = &view.summary;
    let mass = mass_label(s.mass);
    table::pairs(&[
        ("model".into(), model.to_owned()),
        ("successes".into(), view.successes.to_string()),
        ("failures".into(), view.failures.to_string()),
        ("trials".into(), view.trials.to_string()),
        (
            "version".into(),
            format!("{} ({})", view.version, view.updated_at),
        ),
        ("mean".into(), prob(s.mean)),
        ("sd".into(), prob(s.sd)),
        ("median".into(), prob(s.median)),
        (format!("{mass} PI"), interval(s.pi.lower, s.pi.upper, prob)),
        (
            format!("{mass} HPDI"),
            interval(s.hpdi.lower, s.hpdi.upper, prob),
        ),
    ])
}
