//! The `podtap` binary: parses flags, sets up logging, and hands over to the library. Errors end
//! here as one sentence on stderr and a non-zero exit status.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use podtap::capture::CaptureFile;
use podtap::cli::{AnalyzeArgs, Args, Command, ServeArgs, ServeConfig, Source};
use podtap::publish::{AppState, Assets, Hub, app};
use podtap::replay::{self, Pacing};
use podtap::resolve::{ClusterState, load_files};
use podtap::{analyze, demo};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PODTAP_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let result = match args.into_command() {
        Command::Analyze(a) => run_analyze(a),
        Command::Serve(s) => run_serve(s),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podtap: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_analyze(a: AnalyzeArgs) -> anyhow::Result<std::process::ExitCode> {
    let cluster = Arc::new(load_files(&a.cluster)?);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (stats, errors) = analyze::run(&a.files, cluster, a.format, &mut out)?;
    eprintln!("{}", analyze::stats_line(&stats));
    for e in &errors {
        eprintln!("podtap: {e}");
    }
    Ok(if errors.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

fn run_serve(s: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = s.validate()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let (captures, cluster, pacing, source) = match &config.source {
        Source::Demo => (
            vec![demo::capture()],
            demo::cluster(),
            Pacing { realtime: true, looped: true },
            "built-in demo".to_string(),
        ),
        Source::Files { files, looped, realtime } => {
            let captures = files.iter().map(|f| CaptureFile::open(f)).collect::<Result<Vec<_>, _>>()?;
            let names = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
            (captures, ClusterState::default(), Pacing { realtime: *realtime, looped: *looped }, names)
        }
    };
    let cluster = if config.cluster.is_empty() { cluster } else { load_files(&config.cluster)? };
    let assets = match Assets::find(config.assets.as_deref()) {
        Some(dir) => {
            Assets::load(&dir).with_context(|| format!("cannot load the browser app from {}", dir.display()))?
        }
        None => {
            tracing::warn!("browser app not built (run `cargo xtask build`); serving the API only");
            Assets::not_built()
        }
    };
    let hub = Hub::new(source, config.retention);
    let feeder = hub.clone();
    let cluster = Arc::new(cluster);
    std::thread::Builder::new().name("replay".into()).spawn(move || {
        for e in replay::run(&captures, cluster, &feeder, pacing) {
            tracing::error!("{e}");
        }
        tracing::info!("replay finished: {} records", feeder.total());
    })?;
    let ticker = hub.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            ticker.tick();
        }
    });
    let state = AppState { hub, assets: Arc::new(assets), token: config.token.map(Into::into) };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!("podtap serving http://{}", listener.local_addr()?);
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
