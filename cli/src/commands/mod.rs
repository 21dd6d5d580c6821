//! The commands, one module each. They print what a person reads to stdout;
//! whatever goes wrong comes back as a [`CommandError`].

mod experiment;
mod keys;
mod models;
mod post;
mod posterior;
mod upload;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use experiment::experiment;
pub use keys::{create_key, list_keys, revoke_key};
pub use models::models;
pub use post::post;
pub use posterior::posterior;
pub use upload::{upload, UploadOptions};
pub use watch::watch;

use crate::client::ClientError;

/// Why a command failed; shown as `error: <this>`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upload {id} failed: {reason}")]
    UploadFailed { id: String, reason: String },
    #[error("the model service closed the event stream")]
    EventStreamEnded,
    #[error("no key in force has the id or name {0:?}")]
    NoSuchKey(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Writes `text` to stdout and flushes it (`watch` is read line by line).
fn print(text: &str) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `value` as indented JSON, with a final newline.
fn print_json(value: &serde_json::Value) -> Result<(), CommandError> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    print(&format!("{text}\n"))
}

/// How often a progress bar's spinner turns.
const TICK: Duration = Duration::from_millis(100);

/// A progress bar on stderr, drawn only when stderr is a terminal: output
/// that is piped or captured stays free of control characters.
fn progress_bar(length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), draw_target());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    // The spinner keeps turning while nothing moves (the producer
    // validating a large file), so a wait does not look like a hang.
    bar.enable_steady_tick(TICK);
    bar
}

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
