//! The embedded development broker: librdkafka's mock cluster, a real Kafka
//! protocol broker held in memory, reachable on a fixed port.
//!
//! The mock cluster binds a random loopback port, so this binary listens on
//! the fixed bootstrap port (default 9092) and relays each connection to it.
//! Clients bootstrap through the relay and then talk to the broker at the
//! address its metadata advertises (127.0.0.1:<random>), which is why the
//! broker is reachable from this machine only. Topics are created at start.
//! Everything is lost when it stops: it is for development, not for data.
//!
//! Usage: `dev-broker [--port 9092]`; topics and partitions come from the
//! settings (`kafka.topic`, `kafka.dlq_topic`, `kafka.partitions`).

use std::net::SocketAddr;

use anyhow::{bail, Context};
use platform::settings::Settings;
use platform::shutdown::shutdown_signal;
use rdkafka::mocking::MockCluster;
use tokio::net::{TcpListener, TcpStream};

fn main() -> anyhow::Result<()> {
    let port = parse_port(std::env::args().skip(1))?;
    let settings = Settings::load().context("reading settings")?;
    platform::telemetry::init_tracing(&settings.telemetry);

    // The cluster is not Send: it stays on this thread for the whole run.
    let cluster = MockCluster::new(1).context("starting librdkafka's mock cluster")?;
    let kafka = &settings.kafka;
    cluster
        .create_topic(&kafka.topic, kafka.partitions, 1)
        .with_context(|| format!("creating topic {}", kafka.topic))?;
    cluster
        .create_topic(&kafka.dlq_topic, kafka.partitions, 1)
        .with_context(|| format!("creating topic {}", kafka.dlq_topic))?;
    let upstream: SocketAddr = cluster
        .bootstrap_servers()
        .parse()
        .context("reading the mock cluster's address")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port} (is another broker running?)"))?;
        tracing::info!(
            bootstrap = %format!("127.0.0.1:{port}"),
            broker = %upstream,
            topics = %format!("{} ({} partitions), {}", kafka.topic, kafka.partitions, kafka.dlq_topic),
            "development broker ready"
        );
        println!("dev-broker ready on 127.0.0.1:{port}");
        tokio::select! {
            res = relay(listener, upstream) => res,
            () = shutdown_signal() => {
                tracing::info!("development broker stopping; its records are gone");
                Ok(())
            }
        }
    })?;
    drop(cluster);
    Ok(())
}

/// Accepts connections on the fixed port and pipes each to the mock broker.
async fn relay(listener: TcpListener, upstream: SocketAddr) -> anyhow::Result<()> {
    loop {
        let (mut client, peer) = listener.accept().await?;
        tokio::spawn(async move {
            match TcpStream::connect(upstream).await {
                Ok(mut broker) => {
                    // Either side closing ends the pair; errors are a client going away.
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                }
                Err(err) => tracing::warn!(%peer, %err, "cannot reach the mock broker"),
            }
        });
    }
}

fn parse_port(mut args: impl Iterator<Item = String>) -> anyhow::Result<u16> {
    let mut port = 9092;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().context("--port needs a value")?;
                port = value
                    .parse()
                    .with_context(|| format!("invalid port {value:?}"))?;
            }
            "-h" | "--help" => {
                println!("usage: dev-broker [--port PORT]   (default 9092)");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; usage: dev-broker [--port PORT]"),
        }
    }
    Ok(port)
}
