//! The `podtap` binary: parses flags, sets up logging, and hands over to the library. Errors end
//! here as one sentence on stderr and a non-zero exit status.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use podtap::capture::CaptureFile;
use podtap::capture::live::LiveCapture;
use podtap::cli::{AgentArgs, AnalyzeArgs, Args, CaptureArgs, Command, ServeArgs, ServeConfig, Source};
use podtap::feed::replay::{self, Pacing};
use podtap::feed::{self, ClusterFeed};
use podtap::publish::{AppState, Assets, Guard, Hub, app};
use podtap::resolve::{ClusterState, load_files, watch};
use podtap::{analyze, demo};

/// Every request builds and drops a record of a dozen small strings; mimalloc's per-thread free
/// lists make that a third cheaper than glibc's malloc (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Capture(c) => run_capture(c),
        Command::Hub(h) => h.validate().map_err(Into::into).and_then(run_serve_config),
        Command::Agent(a) => run_agent(a),
    };
    podtap::share::remove_temporary_packets();
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
    let now = replay::now_us();
    let time = |t: &Option<String>| t.as_deref().map(|t| podtap::timespec::parse_time(t, now)).transpose();
    let window =
        podtap::store::Window { from: time(&a.from)?.unwrap_or(0), to: time(&a.to)?.map_or(u64::MAX, |t| t + 1) };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (stats, errors) = analyze::run(
        &a.files,
        cluster,
        a.format,
        analyze::Options {
            progress: a.progress,
            per_interface: a.per_interface,
            window,
            threads: a.threads.map(usize::from),
        },
        &mut out,
    )?;
    for line in analyze::unsupported_lines(&stats) {
        eprintln!("{line}");
    }
    eprintln!("{}", analyze::stats_line(&stats));
    for e in &errors {
        eprintln!("podtap: {e}");
    }
    Ok(if errors.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// Resolves at Ctrl-C or SIGTERM (what Kubernetes sends a pod it stops).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn run_capture(c: CaptureArgs) -> anyhow::Result<std::process::ExitCode> {
    let Some(selection) = c.live.selection() else {
        anyhow::bail!("nothing to capture on: give --interface NAME or --pod-interfaces");
    };
    let live = LiveCapture::open(selection, c.live.ring())?;
    let out: Box<dyn std::io::Write + Send> = if c.write.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        let file = std::fs::File::create(&c.write).with_context(|| format!("cannot create {}", c.write.display()))?;
        Box::new(file)
    };
    let out = std::io::BufWriter::with_capacity(1 << 20, out);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let capture = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || podtap::feed::live::record(live, out, &flag))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match c.duration {
            Some(secs) => tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))) => {}
                () = shutdown_signal() => {}
            },
            None => shutdown_signal().await,
        }
    });
    stop.store(true, Ordering::Relaxed);
    let stats = capture.join().map_err(|_| anyhow::anyhow!("the capture thread panicked"))??;
    for i in &stats.interfaces {
        eprintln!("{}: {} packets, {} dropped by the kernel", i.name, i.stats.packets, i.stats.drops);
    }
    eprintln!("captured {} packets on {} interfaces, {} dropped", stats.packets, stats.interfaces.len(), stats.drops);
    Ok(std::process::ExitCode::SUCCESS)
}

fn run_serve(s: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    run_serve_config(s.validate()?)
}

fn run_agent(a: AgentArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = a.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(podtap::ingest::run::agent(config, shutdown_signal()))?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn run_serve_config(config: ServeConfig) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let embedded = if config.assets.is_none() { Assets::embedded() } else { None };
    let assets = match (embedded, Assets::find(config.assets.as_deref())) {
        (Some(app), _) => app,
        (None, Some(dir)) => {
            Assets::load(&dir).with_context(|| format!("cannot load the browser app from {}", dir.display()))?
        }
        (None, None) => {
            tracing::warn!("browser app not built (run `cargo xtask build`); serving the API only");
            Assets::not_built()
        }
    };
    let source = match &config.source {
        Source::Demo => "built-in demo".to_string(),
        // The file names, not where they sit on the server.
        Source::Files { files, .. } => files
            .iter()
            .map(|f| f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
        Source::Live { selection, .. } => format!("live capture on {selection}"),
        Source::Synthetic { rate } => format!("synthetic cluster at {rate} records/s"),
        Source::Agents { .. } => "cluster (agents)".to_string(),
    };
    // A capture replayed as fast as it reads keeps its own time axis.
    let clock = match &config.source {
        Source::Files { looped: false, realtime: false, .. } => podtap_shared::Clock::Capture,
        Source::Agents { capture_clock: true, .. } => podtap_shared::Clock::Capture,
        _ => podtap_shared::Clock::Wall,
    };
    let hub = Hub::with_limits(source, config.limits, clock);
    let mut share = podtap::share::from_config(&config.share)?;
    // Hub replicas on a bus keep saved sessions, live links and sign-ins there, so each knows
    // every one.
    let bus_url = match &config.source {
        Source::Agents { bus: Some(bus), .. } => Some(bus.url.clone()),
        _ => None,
    };
    if let Some(url) = &bus_url {
        use podtap::ingest::bus::kept::Kept;
        if config.share.link_keys.is_empty() {
            tracing::warn!(
                "saved sessions, live links and sign-ins are kept on the bus sealed with this replica's own link key: \
                 give every hub replica the same --link-key, or what one made the others cannot open"
            );
        }
        let links = Kept::<podtap::share::db::LiveLink>::start(url, &share.keys).await?;
        let saved = podtap::ingest::bus::saved::BusSessions::start(url, &share.keys, config.share.bounds).await?;
        share = share.kept_in(saved, links);
    }
    let share = Arc::new(share);
    if !matches!(config.source, Source::Agents { .. } | Source::Synthetic { .. })
        && let Some(packets) = podtap::share::packet_store(&config.share)?
    {
        hub.set_packets(packets);
    }
    let (cluster, kube_client) = cluster_feed(&config, &hub).await?;
    let stop = Arc::new(AtomicBool::new(false));
    match config.source.clone() {
        Source::Demo => replay_into(vec![demo::capture()], &hub, cluster, Pacing { realtime: true, looped: true })?,
        Source::Files { files, looped, realtime } => {
            let captures = files.iter().map(|f| CaptureFile::open(f)).collect::<Result<Vec<_>, _>>()?;
            replay_into(captures, &hub, cluster, Pacing { realtime, looped })?
        }
        Source::Synthetic { rate } => {
            let feeder = hub.clone();
            std::thread::Builder::new()
                .name("synthetic".into())
                .spawn(move || podtap::feed::synthetic::run(&feeder, rate))?;
        }
        Source::Agents { bus: Some(bus), .. } => {
            let retention_us = config.limits.retention_us;
            podtap::ingest::bus::replica::start(hub.clone(), cluster, bus, retention_us).await?;
        }
        Source::Agents { ingest, .. } => {
            let (events, merged) =
                podtap::ingest::join::start(hub.clone(), podtap::ingest::join::Outlet::Hub, cluster)?;
            let fetch = podtap::ingest::fetch::PacketFetch::new(hub.clone());
            hub.set_remote_packets(Arc::new(podtap::ingest::fetch::Remote(fetch.clone())));
            let state = podtap::ingest::server::IngestState::new(events, merged, config.token.clone().map(Into::into))
                .with_fetch(fetch);
            let listener = tokio::net::TcpListener::bind(ingest)
                .await
                .with_context(|| format!("cannot listen for agents on {ingest}"))?;
            tracing::info!("agents connect to http://{}", listener.local_addr()?);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, podtap::ingest::server::router(state)).await {
                    tracing::error!("the ingest listener stopped: {e}");
                }
            });
        }
        Source::Live { selection, ring } => {
            let live = LiveCapture::open(selection, ring)?;
            let (feeder, flag) = (hub.clone(), stop.clone());
            std::thread::Builder::new().name("capture".into()).spawn(move || {
                if let Err(e) = podtap::feed::live::run(live, cluster, &feeder, &flag) {
                    tracing::error!("live capture stopped: {e}");
                }
            })?;
        }
    }
    let ticker = hub.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            ticker.tick();
        }
    });
    let guard = Guard::new(config.listen, config.embed_origins.clone());
    let assets = Arc::new(assets.framed_by(&config.embed_origins));
    let kept: Option<Arc<dyn podtap::access::signin::SignIns>> = match &bus_url {
        Some(url) if config.auth.oidc.is_some() => {
            Some(podtap::ingest::bus::kept::Kept::<podtap::access::signin::SignIn>::start(url, &share.keys).await?)
        }
        _ => None,
    };
    let people = Arc::new(people_of(config.auth.clone(), kube_client, &share, kept)?);
    let out: Option<Box<dyn std::io::Write + Send>> = match &config.auth.audit_log {
        Some(path) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the audit log {}", path.display()))?,
        )),
        None => None,
    };
    let counting = Arc::new(hub.audit_counting());
    let audit = Arc::new(podtap::access::audit::Audit::new(out, Some(counting)));
    let state = AppState { people, audit, ..AppState::new(hub, assets, config.token.map(Into::into), guard, share) };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!("podtap serving http://{}", listener.local_addr()?);
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    stop.store(true, Ordering::Relaxed);
    Ok(())
}

/// The identity sources and how people's sight is decided, from the flags: RBAC is asked when
/// people sign in and names come from an API server; sign-ins are kept with the sessions (or
/// `kept`: on the bus).
fn people_of(
    auth: podtap::cli::AuthConfig,
    client: Option<kube::Client>,
    share: &Arc<podtap::share::Share>,
    kept: Option<Arc<dyn podtap::access::signin::SignIns>>,
) -> anyhow::Result<podtap::access::People> {
    use podtap::access::jwt::{Keys, TokenCheck};
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot make the HTTP client identity providers are asked with")?;
    let reviewer = match (auth.has_identity(), client, &auth.rbac) {
        (true, Some(client), Some((verb, resource))) => {
            let r = podtap::resolve::review::KubeReviewer::new(client, verb, resource);
            tracing::info!(
                "people see the namespaces where RBAC allows them `{}`",
                podtap::access::decide::Reviewer::asks(&r)
            );
            Some(Arc::new(r) as Arc<dyn podtap::access::decide::Reviewer>)
        }
        _ => None,
    };
    let decider = podtap::access::Decider::new(auth.scopes, reviewer, auth.admin_groups, auth.unnamespaced_groups);
    let jwt = auth.jwt.map(|(jwks, audience, issuer)| TokenCheck {
        keys: Keys::new(jwks, http.clone()),
        audience,
        issuer,
        claims: auth.claims.clone(),
    });
    let oidc = auth.oidc.map(|c| podtap::access::oidc::Oidc::new(c, http.clone()));
    let signins = oidc.is_some().then(|| kept.unwrap_or_else(|| share.clone()));
    Ok(podtap::access::People { proxy: auth.proxy, jwt, oidc, signins, lifetimes: auth.lifetimes, decider })
}

/// Where names come from: `--cluster` files, the demo's List, the API server (a kubeconfig or
/// in-cluster config is present, or `--context` asks for one), or nowhere. From the API server,
/// the feed is `None` until its first lists are in or `--api-wait` is over: `/healthz` says 503
/// meanwhile, a replay waits and live records are held (`feed::engine_for`), so nothing is named
/// without the cluster for good.
async fn cluster_feed(config: &ServeConfig, hub: &Hub) -> anyhow::Result<(ClusterFeed, Option<kube::Client>)> {
    let fixed = |state: ClusterState, source: &str| {
        let state = Arc::new(state);
        hub.set_cluster(state.clone());
        hub.set_cluster_status(source, true);
        (feed::fixed(state), None)
    };
    if !config.cluster.is_empty() {
        return Ok(fixed(load_files(&config.cluster)?, "files"));
    }
    if config.source == Source::Demo {
        return Ok(fixed(demo::cluster(), "demo"));
    }
    let asked = config.context.is_some() || std::env::var_os("KUBECONFIG").is_some();
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let home_config = std::env::var_os("HOME").is_some_and(|h| std::path::Path::new(&h).join(".kube/config").is_file());
    if !(asked || in_cluster || home_config) {
        return Ok(fixed(ClusterState::default(), "none"));
    }
    let client = match watch::client(config.context.as_deref()).await {
        Ok(c) => c,
        Err(e) if asked => return Err(e.into()),
        Err(e) => {
            tracing::warn!("{e}; showing addresses without names");
            return Ok(fixed(ClusterState::default(), "none"));
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(None);
    hub.set_cluster_status("api", false);
    let h = hub.clone();
    let scope = watch::Scope { namespaces: config.namespaces.clone() };
    tracing::info!(
        "waiting for the API server's first lists of pods, Services, EndpointSlices and nodes (at most {:?})",
        config.api_wait
    );
    let access = watch::start(client.clone(), scope, config.api_wait, move |state| {
        h.set_cluster(state.clone());
        h.set_cluster_status("api", true);
        let _ = tx.send(Some(state));
    });
    hub.set_cluster_access(access);
    Ok((rx, Some(client)))
}

/// Starts replaying `captures` into `hub` on their own thread.
fn replay_into(captures: Vec<CaptureFile>, hub: &Hub, cluster: ClusterFeed, pacing: Pacing) -> anyhow::Result<()> {
    let feeder = hub.clone();
    std::thread::Builder::new().name("replay".into()).spawn(move || {
        for e in replay::run(&captures, cluster, &feeder, pacing) {
            tracing::error!("{e}");
        }
        tracing::info!("replay finished: {} records", feeder.total());
    })?;
    Ok(())
}
