//! `bayes`, the command-line client: the arguments ([`Cli`]), one HTTP
//! client per service (`client`), one module per command (`commands`) and the
//! aligned tables they print (`table`).
//!
//! Output for people goes to stdout; progress bars go to stderr and only when
//! it is a terminal, so scripts and tests read clean output. Every failure
//! ends as one line on stderr and exit code 1 (clap's usage errors exit 2).

mod client;
mod commands;
mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use reqwest::Url;

pub use client::ClientError;
pub use commands::CommandError;

/// Talk to the Bayesian pipeline's producer and model service.
#[derive(Debug, Parser)]
#[command(name = "bayes", version)]
pub struct Cli {
    /// The producer's base URL (observations and uploads).
    #[arg(
        long,
        env = "BAYES_PRODUCER_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub producer_url: Url,
    /// The model service's base URL (posteriors, models, experiments, events).
    #[arg(
        long,
        env = "BAYES_MODEL_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    pub model_url: Url,
    /// The API key sent to both services (`Authorization: Bearer`), needed
    /// when they require keys. Prefer BAYES_KEY: a flag shows in the
    /// process list.
    #[arg(long, env = "BAYES_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send outcomes of one model: `bayes post globe WLWWWLWLW` or `bayes post globe w l w`.
    Post {
        /// The model, e.g. `globe`.
        model: String,
        /// Outcomes `w`/`l` (also `1`/`0`, `success`/`failure`) or runs like `WLWWWLWLW`.
        #[arg(required = true)]
        outcomes: Vec<String>,
    },
    /// Upload a CSV file (possibly `.gz`) and follow it until the consumer applied it.
    Upload {
        /// The CSV: a header row with `model` (optional with --model), `outcome` or `successes` and `trials`.
        file: PathBuf,
        /// The model of rows that name none.
        #[arg(long)]
        model: Option<String>,
        /// Count a file that was uploaded before once more.
        #[arg(long)]
        force: bool,
        /// Print the upload's id and return as soon as the producer accepted it.
        #[arg(long)]
        no_wait: bool,
    },
    /// A model's posterior: counts, version, mean, sd, median, PI and HPDI.
    Posterior {
        /// The model, e.g. `globe`.
        model: String,
        /// The mass of the intervals, strictly between 0 and 1 (the service's default: 0.89).
        #[arg(long)]
        mass: Option<f64>,
        /// As of this version (0: the prior alone).
        #[arg(long)]
        version: Option<u64>,
        /// Print the service's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Every model with its counts.
    Models {
        /// Print JSON (`{"models": [...]}`) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print a model's posterior and redraw it whenever it changes, until Ctrl-C.
    Watch {
        /// The model, e.g. `globe`.
        model: String,
    },
    /// Create, list and revoke API keys (needs an admin key).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// An experiment's arms, decision and sample-ratio check.
    Experiment {
        /// The experiment's id.
        id: String,
        /// Print the service's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// `bayes keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its token (shown this once) on stdout.
    Create {
        /// Its name: 1 to 64 of a-z, 0-9, `_`, `.`, `-`.
        #[arg(long)]
        name: String,
        /// A scope it holds: ingest, read or admin (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Requests a second it may send to each service (and its burst).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// The keys in force, without their tokens.
    List {
        /// Print the service's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, by id or by name.
    Revoke {
        /// The key's id (from `bayes keys list`) or its name. Not called
        /// `key`: clap would take it for the global `--key`, and send the
        /// name as the API key.
        #[arg(value_name = "KEY")]
        id_or_name: String,
    },
}

/// Runs one command to its end.
pub async fn run(cli: Cli) -> Result<(), CommandError> {
    let services = client::Services::new(cli.producer_url, cli.model_url, cli.key.as_deref())?;
    match cli.command {
        Command::Post { model, outcomes } => commands::post(&services, &model, &outcomes).await,
        Command::Upload {
            file,
            model,
            force,
            no_wait,
        } => {
            let options = commands::UploadOptions {
                model,
                force,
                wait: !no_wait,
            };
            commands::upload(&services, &file, options).await
        }
        Command::Posterior {
            model,
            mass,
            version,
            json,
        } => commands::posterior(&services, &model, mass, version, json).await,
        Command::Models { json } => commands::models(&services, json).await,
        Command::Watch { model } => commands::watch(&services, &model).await,
        Command::Experiment { id, json } => commands::experiment(&services, &id, json).await,
        Command::Keys(KeysCommand::Create {
            name,
            scopes,
            rate_limit,
        }) => commands::create_key(&services, &name, &scopes, rate_limit).await,
        Command::Keys(KeysCommand::List { json }) => commands::list_keys(&services, json).await,
        Command::Keys(KeysCommand::Revoke { id_or_name }) => {
            commands::revoke_key(&services, &id_or_name).await
        }
    }
}
