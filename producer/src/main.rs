//! The producer binary: loads settings, starts telemetry, serves until SIGINT
//! or SIGTERM, then flushes what the broker has not yet acknowledged.

use anyhow::Context;
use platform::settings::Settings;
use platform::shutdown::shutdown_signal;
use producer::Application;

// Each record allocates on a tokio worker and is freed on librdkafka's
// delivery thread; glibc's malloc spends much of a batch's time on exactly
// that cross-thread pattern, mimalloc far less (see scripts/bench-producer.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    platform::telemetry::init_tracing(&settings.telemetry);
    let application = Application::build(settings).await?;
    application.run_until_stopped(shutdown_signal()).await
}
