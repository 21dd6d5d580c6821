//! The consumer service: load settings, start telemetry, run until SIGINT or SIGTERM.

use anyhow::Context;
use platform::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    platform::telemetry::init_tracing(&settings.telemetry);
    consumer::run(settings, platform::shutdown::shutdown_signal())
        .await
        .context("the consumer stopped with an error")
}
