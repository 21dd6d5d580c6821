//! `bayes`: the command-line client of the producer and the model service.
//! Everything is in the library; this only parses the arguments (clap exits
//! 2 on a usage error) and turns an error into one line and exit code 1.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
