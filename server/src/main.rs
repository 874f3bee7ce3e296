use anyhow::Context;
use clap::Parser;
use ferrite_server::{Options, Server};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("selftest") {
        return selftest();
    }
    let options = Options::parse();
    ferrite_server::logging::init(&options.log_options())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(options))
}

/// `ferrite selftest ...`: checks a device end to end; exits non-zero when
/// anything fails (see `ferrite_server::selftest`).
fn selftest() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut out = std::io::stdout();
    let passed =
        ferrite_server::selftest::main(std::env::args().skip(2), &mut out).unwrap_or_else(|e| {
            match e.downcast_ref::<clap::Error>() {
                Some(usage) => usage.exit(),
                None => {
                    eprintln!("ferrite selftest: {e:#}");
                    false
                }
            }
        });
    std::process::exit(if passed { 0 } else { 1 });
}

async fn run(options: Options) -> anyhow::Result<()> {
    let server = Server::start(options).await?;
    let line = server.ready_line();
    tracing::info!("{line}");
    println!("{line}");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
