//! The load and the verdict of the chaos run (`scripts/chaos.sh`, which runs
//! the built example `chaos-load`):
//!
//! - `chaos-load run` posts observations to the producer over HTTP and
//!   publishes records with kcat until the file `--stop-file` appears, then
//!   keeps retrying what is not acknowledged yet (up to `--drain` seconds);
//!   writes what was acknowledged, per model, to `--out` ([`load`]);
//! - `chaos-load verify` waits until the pipeline has caught up, then
//!   prints acknowledged against counted per model and exits 1 on any
//!   difference ([`verify`]).
//!
//! The consumer applies each id once (docs/exactly-once.md), so what is
//! counted must equal what was acknowledged: less is a lost observation,
//! more a doubled one. The load is drawn from `--seed`, so a run can be
//! repeated. The HTTP loop and its latency histogram, the retries under an
//! `Idempotency-Key` and the comparison are test-support's `bench` module.

mod kcat;
mod load;
mod verify;

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "chaos-load",
    about = "The load and the verdict of scripts/chaos.sh"
)]
enum Command {
    /// Drive the load until the stop file appears.
    Run(load::RunArgs),
    /// Wait for the pipeline to catch up, then compare.
    Verify(verify::VerifyArgs),
}

/// One line of the load's progress, indented under chaos.sh's own lines.
fn log(message: &str) {
    println!("    load: {message}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Command::parse() {
        Command::Run(args) => load::run(args).await,
        Command::Verify(args) => verify::verify(args).await,
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("chaos-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
