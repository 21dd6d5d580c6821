//! What the routes read from a request before they ask the query layer:
//! ids from the path, paging, `?mass=`, JSON bodies; and the parameters
//! several routes share, each declared once for both the extractor and the
//! OpenAPI document.
//!
//! The model-id pattern is `domain::schema::MODEL_ID_PATTERN` everywhere:
//! utoipa's attributes take only literals, so the parameters that carry it
//! implement `IntoParams` by hand, over `platform::http::model_id_parameter`.

use std::marker::PhantomData;

use domain::bayes::{check_mass, DEFAULT_MASS};
use domain::ModelId;
use platform::http::{model_id_parameter, parameter};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

use crate::error::ApiError;
use crate::query::TimeTravel;

/// A model id from a path: an id that cannot be valid names no model (404).
pub fn model_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|_| ApiError::ModelNotFound(raw.to_owned()))
}

/// An experiment id from a path: one that cannot be valid names none (404).
pub fn experiment_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|_| ApiError::ExperimentNotFound(raw.to_owned()))
}

/// The id of a `PUT`, which creates what it names: an invalid one is the
/// client's mistake (422), not an unknown resource.
pub fn new_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

/// `?limit=` checked: 1..=1000, default 100 (the same in both services).
pub fn page_limit(raw: Option<u32>) -> Result<u32, ApiError> {
    platform::http::page_limit(raw).map_err(ApiError::invalid)
}

/// `?mass=` checked: strictly between 0 and 1, default 0.89.
pub fn mass(raw: Option<f64>) -> Result<f64, ApiError> {
    Ok(check_mass(raw.unwrap_or(DEFAULT_MASS))?)
}

/// A request body read as a JSON object first, then as `T`: serde would
/// also fill a struct from an array of its fields (`[null, null]`), which
/// no client means.
pub fn object_body<T: serde::de::DeserializeOwned>(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::Rejected(platform::http::Rejection::InvalidBody(e.to_string())))
}

/// `{id}` of the model routes, as the OpenAPI document describes it.
pub struct ModelPath;

/// `{id}` of the experiment routes, as the OpenAPI document describes it.
pub struct ExperimentPath;

impl utoipa::IntoParams for ModelPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![id_param(
            "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit",
        )]
    }
}

impl utoipa::IntoParams for ExperimentPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![id_param(
            "Experiment id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit",
        )]
    }
}

/// `?a=` and `?b=` of `/compare`, as the OpenAPI document describes them.
pub struct ComparedModels;

impl utoipa::IntoParams for ComparedModels {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let model = |name, description| {
            model_id_parameter(name, ParameterIn::Query, description, true).build()
        };
        vec![
            model("a", "The first model."),
            model("b", "The second model."),
        ]
    }
}

fn id_param(description: &str) -> Parameter {
    model_id_parameter("id", ParameterIn::Path, description, true).build()
}

/// `?limit=`'s schema: 1..=1000.
fn limit_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(1))
        .maximum(Some(1000))
}

/// What a page holds, in the words of its parameters' descriptions.
pub trait Listing {
    /// `?after=`'s description.
    const AFTER: &'static str;
    /// `?limit=`'s description.
    const LIMIT: &'static str;
    /// `?mass=`'s description, for pages of history.
    const MASS: &'static str = "";
}

/// `?after=` (an id) and `?limit=`: a page of models or experiments in id
/// order. One type for every such list; `K` only words the documentation.
#[derive(Debug, Deserialize)]
#[serde(bound = "")]
pub struct IdPage<K> {
    after: Option<String>,
    limit: Option<u32>,
    #[serde(skip)]
    listing: PhantomData<K>,
}

impl<K> IdPage<K> {
    /// The id to start after, checked, and the page size.
    pub fn read(&self) -> Result<(Option<ModelId>, u32), ApiError> {
        let limit = page_limit(self.limit)?;
        let after = self
            .after
            .as_deref()
            .map(ModelId::parse)
            .transpose()
            .map_err(|e| ApiError::invalid(format!("after: {e}")))?;
        Ok((after, limit))
    }
}

impl<K: Listing> utoipa::IntoParams for IdPage<K> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            model_id_parameter("after", ParameterIn::Query, K::AFTER, false).build(),
            parameter("limit", ParameterIn::Query, K::LIMIT, false, limit_schema()).build(),
        ]
    }
}

/// `?mass=`, `?after=` (a version) and `?limit=`: a page of a model's or
/// an experiment's history. One type for both; `K` only words the
/// documentation.
#[derive(Debug, Deserialize)]
#[serde(bound = "")]
pub struct VersionPage<K> {
    pub mass: Option<f64>,
    pub after: Option<u64>,
    pub limit: Option<u32>,
    #[serde(skip)]
    listing: PhantomData<K>,
}

impl<K: Listing> utoipa::IntoParams for VersionPage<K> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mass = ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .exclusive_minimum(Some(0))
            .exclusive_maximum(Some(1));
        let after = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(i64::MAX));
        vec![
            parameter("mass", ParameterIn::Query, K::MASS, false, mass).build(),
            parameter("after", ParameterIn::Query, K::AFTER, false, after).build(),
            parameter("limit", ParameterIn::Query, K::LIMIT, false, limit_schema()).build(),
        ]
    }
}

/// The documentation of the model list.
#[derive(Debug)]
pub struct Models;

impl Listing for Models {
    const AFTER: &'static str =
        "Start after this model id (from `next_after` of the previous page).";
    const LIMIT: &'static str = "Models per page, 1..=1000 (default 100).";
}

/// The documentation of the experiment list.
#[derive(Debug)]
pub struct Experiments;

impl Listing for Experiments {
    const AFTER: &'static str =
        "Start after this experiment id (from `next_after` of the previous page).";
    const LIMIT: &'static str = "Experiments per page, 1..=1000 (default 100).";
}

/// The documentation of a model's history.
#[derive(Debug)]
pub struct ModelHistory;

impl Listing for ModelHistory {
    const MASS: &'static str = "Mass of each HPDI, strictly between 0 and 1 (default 0.89).";
    const AFTER: &'static str = "Start after this version (from `next_after` of the previous page);\nwithout it the first page starts at version 0, the prior.";
    const LIMIT: &'static str = "Versions per page, 1..=1000 (default 100).";
}

/// The documentation of an experiment's history.
#[derive(Debug)]
pub struct ExperimentHistory;

impl Listing for ExperimentHistory {
    const MASS: &'static str =
        "Mass for the decision at each point, strictly between 0 and 1 (default 0.89).";
    const AFTER: &'static str = "Start after this version (from `next_after`); without it the first\npage starts at version 0, the priors.";
    const LIMIT: &'static str = "Points per page, 1..=1000 (default 100).";
}

/// `?version=` and `?at=` of a model's answers: one declaration for every
/// route that travels back in a model's history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOf {
    /// Answer as of this version (0: the prior alone, before any data).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    version: Option<u64>,
    /// Answer as of this time (RFC 3339): the last version applied at or before it.
    #[param(format = DateTime)]
    at: Option<String>,
}

impl AsOf {
    /// The point of history asked for.
    pub fn travel(self) -> TimeTravel {
        TimeTravel::new(self.version, self.at)
    }
}

/// `?since=` and `?window=` of a model's answers: one declaration for
/// every route that answers from a window of a model's counts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Since {
    /// Only the observations committed after this time (RFC 3339), under the model's prior.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the observations committed within this span before `at` (or now): `7d`, `24h`, `90m`.
    #[param(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    window: Option<String>,
}

impl Since {
    /// `travel` narrowed to this window.
    pub fn narrow(self, travel: TimeTravel) -> TimeTravel {
        travel.windowed(self.since, self.window)
    }
}
