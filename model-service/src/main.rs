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
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}
