//! The model service binary: load settings, start telemetry, serve until
//! ctrl-c or SIGTERM.

use anyhow::Context;
use model_service::Application;
use platform::settings::Settings;
use platform::shutdown::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    platform::telemetry::init_tracing(&settings.telemetry);
    // While the database is unreachable or refuses the connection, the
    // port answers the probes; a signal meanwhile stops the wait.
    let Some(app) = Application::build_until(settings, shutdown_signal()).await? else {
        return Ok(());
    };
    app.run_until_stopped(shutdown_signal()).await
}
