//! Command-line flags (clap, raw) and their validation into a `Config` the rest of podtap trusts:
//! two steps, so a bad combination is refused in one clear sentence before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::capture::live::{POD_PATTERNS, RingSize, Selection};

mod auth;
mod cluster;
mod share;

pub use auth::{AuthArgs, AuthConfig};
pub use cluster::{AgentArgs, AgentConfig, AgentSource, HubArgs};
pub use share::{ShareArgs, ShareConfig};

/// podtap — which pod really answered, over which connection, through which Service.
#[derive(Debug, Parser)]
#[command(name = "podtap", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Keep SQL statements' literals (strings, numbers) in records instead of `?`. Off by default:
    /// literals are users' data and do not leave the node that dissects (the agent, `serve`,
    /// `analyze`); give it there, for a database you may see the data of.
    #[arg(long, global = true, env = "PODTAP_KEEP_SQL_LITERALS")]
    pub keep_sql_literals: bool,
}

impl Args {
    /// The subcommand to run; none means `serve` with its defaults (the built-in demo).
    pub fn into_command(self) -> Command {
        crate::dissect::sql::keep_literals(self.keep_sql_literals);
        self.command.unwrap_or_else(|| match Args::parse_from(["podtap", "serve"]).command {
            Some(c) => c,
            None => unreachable!("`serve` was given"),
        })
    }
}

#[derive(Debug, Subcommand)]
// Parsed once per run: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve the web UI and API. With no source it replays the built-in demo in a loop.
    Serve(ServeArgs),
    /// Analyse capture files (pcap, pcapng) and print what was found.
    Analyze(AnalyzeArgs),
    /// Capture live on this node's interfaces into a pcapng file (until Ctrl-C or --duration).
    Capture(CaptureArgs),
    /// The cluster's hub: takes every node's agent, names and merges what they saw, and serves
    /// the web UI and API (the same as `serve`'s).
    Hub(HubArgs),
    /// A node's agent: captures and dissects on this node and streams what it saw to the hub.
    /// Needs no Kubernetes API access, only CAP_NET_RAW.
    Agent(AgentArgs),
}

/// Live capture: which interfaces, and how much kernel memory per interface.
#[derive(Debug, Default, clap::Args)]
pub struct LiveArgs {
    /// Capture live on this interface; a glob ('veth*') follows matching interfaces as they come
    /// and go. Repeatable.
    #[arg(long = "interface", short = 'i', value_name = "NAME")]
    pub interface: Vec<String>,
    /// Capture live on every pod interface of the node (veth*, cali*, lxc*, eni*, gke*, azv*),
    /// following pods as they come and go.
    #[arg(long)]
    pub pod_interfaces: bool,
    /// Leave out interfaces whose name matches this glob. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Kernel ring buffer per interface, in MiB (1 to 1024).
    #[arg(long, default_value_t = LiveArgs::default_ring_mb(), value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ring_mb: u32,
}

impl LiveArgs {
    /// The interfaces to capture on, or `None` when no live capture was asked for.
    pub fn selection(&self) -> Option<Selection> {
        let mut include = self.interface.clone();
        if self.pod_interfaces {
            include.extend(POD_PATTERNS.iter().map(|p| p.to_string()));
        }
        (!include.is_empty()).then(|| Selection { include, exclude: self.exclude.clone() })
    }

    fn default_ring_mb() -> u32 {
        4
    }

    /// No live capture, every flag at its default.
    pub fn default_flags() -> Self {
        Self { ring_mb: Self::default_ring_mb(), ..Self::default() }
    }

    pub fn ring(&self) -> RingSize {
        // Quarter-MiB blocks, four per MiB: the kernel hands a block over when it is full or 50 ms
        // old, so at a low rate every block holds a few packets, and the number of blocks is what
        // bounds how long the reader may stall (16 blocks: 0.8 s) before packets are dropped.
        RingSize { block_size: 1 << 18, blocks: self.ring_mb * 4, ..RingSize::default() }
    }
}

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// The pcapng file to write ('-' for standard output).
    #[arg(long, short = 'w', value_name = "FILE")]
    pub write: PathBuf,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8080", env = "PODTAP_LISTEN")]
    pub listen: SocketAddr,
    /// Capture files to replay (pcap or pcapng), in order.
    #[arg(long = "pcap", value_name = "FILE", num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Cluster state: `kubectl get pods,services,endpointslices,nodes -A -o json` output. Without
    /// it, names come from the API server when a kubeconfig (KUBECONFIG, ~/.kube/config) or the
    /// in-cluster service account is there.
    #[arg(long = "cluster", value_name = "FILE", num_args = 1..)]
    pub cluster: Vec<PathBuf>,
    /// The kubeconfig context to watch the cluster through (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespaces to watch one by one when a kind may not be listed cluster-wide (a Role rather
    /// than a ClusterRole); default: the kubeconfig context's namespace.
    #[arg(long = "namespace", short = 'n', value_name = "NS", num_args = 1..)]
    pub namespaces: Vec<String>,
    /// How long to wait for the API server's first lists while it refuses connections, times
    /// out or answers 5xx (403 and 404 are answers): /healthz says 503, a replay waits, live
    /// records are held; after it, podtap serves and says what it lacks.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub api_wait: String,
    /// Replay the files over and over (timestamps shifted to now each time).
    #[arg(long = "loop")]
    pub looped: bool,
    /// Replay at the speed the packets were captured, not as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Directory with the built browser app (index.html, …); default: the workspace's dist/.
    #[arg(long, env = "PODTAP_ASSETS")]
    pub assets: Option<PathBuf>,
    /// Token the API, the stream and the browser need: as `Authorization: Bearer`, or exchanged once
    /// for a sign-in cookie (open the page with `?token=`, or sign in on it).
    #[arg(long, env = "PODTAP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long records and their rollups are kept (`15m`, `1h`, `90s`). A bare number is the
    /// old meaning, a record count, as `--max-records`.
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub retention: String,
    /// Instead of traffic, a synthetic cluster (1,000 pods, 3,000 caller → callee pairs) at RATE
    /// records a second: for load tests and for seeing the views at cluster scale.
    #[arg(long, value_name = "RATE")]
    pub synthetic: Option<u64>,
    /// Records kept at most; the oldest go first, their per-second rollups stay for the
    /// retention (~0.5 KB a record: the default is about 500 MB at most).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_records: usize,
    /// Origins (`https://portal.example`) whose pages may embed podtap and open its stream, besides
    /// podtap's own.
    #[arg(long = "embed-origin", value_name = "ORIGIN", num_args = 1..)]
    pub embed_origins: Vec<String>,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng). `FILE@NODE` names the node a file was taken on: the
    /// captures of several nodes are then merged across them (a request seen on the client's node
    /// and on the server's is one record).
    #[arg(required = true, value_name = "FILE[@NODE]")]
    pub files: Vec<PathBuf>,
    /// Cluster state files, as for `serve`.
    #[arg(long = "cluster", value_name = "FILE", num_args = 1..)]
    pub cluster: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// One record per interface that saw a request, instead of one per request (observations
    /// before and after kube-proxy's DNAT/SNAT are then not merged).
    #[arg(long)]
    pub per_interface: bool,
    /// Threads to read one file with: 1 reads on one; 2 reads, decodes and dissects beside the
    /// naming and merging; from 3, the dissecting is shared by connection over all but two.
    /// Records are the same however many. Default: the machine's cores (3 on 2 cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
    /// A progress bar on stderr: `auto` shows it for files of 16 MiB or more when stderr is a
    /// terminal.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Only records that started at or after this time (RFC 3339, epoch µs, or relative to now
    /// like `-5m`).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only records that started at or before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

/// When `analyze` draws a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

/// Output of `analyze`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per exchange, for people.
    Table,
    /// One JSON record per line.
    Jsonl,
    /// Per-Service and per-edge counts as one JSON document.
    Summary,
}

/// Where `serve` gets its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The capture shipped inside the binary, looped in real time.
    Demo,
    Files {
        files: Vec<PathBuf>,
        looped: bool,
        realtime: bool,
    },
    /// Live capture on this node.
    Live {
        selection: Selection,
        ring: RingSize,
    },
    /// A synthetic cluster at this many records a second.
    Synthetic {
        rate: u64,
    },
    /// `podtap hub`: nodes' agents connect to `ingest`.
    Agents {
        ingest: SocketAddr,
        /// The agents replay captures on their own time axis (`agent --pcap`), not live.
        capture_clock: bool,
        /// Agents publish to this bus and this hub is one replica reading it (no `ingest`).
        bus: Option<crate::ingest::bus::BusConfig>,
    },
}

/// A validated `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub source: Source,
    pub cluster: Vec<PathBuf>,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    /// How long the API server's first lists are waited for.
    pub api_wait: std::time::Duration,
    pub assets: Option<PathBuf>,
    pub token: Option<String>,
    pub limits: crate::store::Limits,
    pub embed_origins: Vec<String>,
    pub share: ShareConfig,
    pub auth: AuthConfig,
}

/// Why flags were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Listening beyond loopback without a token would publish cluster traffic to the network.
    #[error(
        "refusing to listen on {0} without --token: podtap shows cluster traffic; bind to 127.0.0.1 or set a token"
    )]
    OpenWithoutToken(SocketAddr),
    /// --loop/--realtime only make sense with files.
    #[error("--loop and --realtime apply to --pcap files; the built-in demo always loops in real time")]
    PacingWithoutFiles,
    /// An empty token would accept anyone.
    #[error("--token must not be empty")]
    EmptyToken,
    #[error("--retention and --max-records must be at least 1")]
    ZeroRetention,
    #[error("--retention: {0}")]
    BadRetention(crate::timespec::BadDuration),
    #[error("--api-wait: {0}")]
    BadApiWait(crate::timespec::BadDuration),
    /// Files and live capture at once would interleave two unrelated timelines.
    #[error("choose one source: --pcap files, live capture (--interface/--pod-interfaces) or --synthetic, not two")]
    TwoSources,
    /// An embed origin must be a scheme and a host, nothing more.
    #[error("--embed-origin {0}: give an origin like https://portal.example or http://localhost:3000")]
    BadOrigin(String),
    #[error("--ingest {0}: agents would send cluster traffic unauthenticated; bind to 127.0.0.1 or set --token")]
    OpenIngestWithoutToken(SocketAddr),
    #[error("--hub: {0}")]
    BadHub(String),
    /// `--bus`, `--replica`, `--bus-partitions` or `--bus-retention`.
    #[error("{0}")]
    BadBus(String),
    #[error("give the agent something to observe: --pod-interfaces, --interface NAME or --pcap FILE")]
    AgentWithoutSource,
    #[error("--link-key: a key must be 16 characters or more")]
    ShortLinkKey,
    #[error("--base-path {0}: give a path like /podtap/ (letters, digits, / - _ . ~)")]
    BadBasePath(String),
    #[error("--max-sessions and --sessions-mb must be at least 1")]
    ZeroSessions,
    #[error("--realtime applies to --pcap files")]
    RealtimeWithoutFiles,
    #[error("--buffer-mb must be at least 1")]
    ZeroBuffer,
    #[error("--node: could not tell this node's name (no hostname); give --node NAME")]
    NoNodeName,
    /// A sign-in or scope flag.
    #[error("{0}")]
    Auth(String),
    /// --exclude or --ring-mb without anything to capture.
    #[error("--exclude and --ring-mb apply to live capture: add --interface or --pod-interfaces")]
    LiveOptionsWithoutCapture,
}

impl ServeArgs {
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        if self.token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return Err(ConfigError::OpenWithoutToken(self.listen));
        }
        if self.pcap.is_empty() && (self.looped || self.realtime) {
            return Err(ConfigError::PacingWithoutFiles);
        }
        let limits = match self.retention.parse::<usize>() {
            // The old `--retention N` (a record count).
            Ok(n) => crate::store::Limits { max_records: n, ..crate::store::Limits::default() },
            Err(_) => crate::store::Limits {
                retention_us: crate::timespec::parse_duration_us(&self.retention).map_err(ConfigError::BadRetention)?,
                max_records: self.max_records,
            },
        };
        if limits.max_records == 0 || limits.retention_us == 0 {
            return Err(ConfigError::ZeroRetention);
        }
        if let Some(bad) = self.embed_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::BadOrigin(bad.clone()));
        }
        let live = self.live.selection();
        if live.is_none() && (!self.live.exclude.is_empty() || self.live.ring_mb != LiveArgs::default_ring_mb()) {
            return Err(ConfigError::LiveOptionsWithoutCapture);
        }
        if self.synthetic.is_some() && (live.is_some() || !self.pcap.is_empty()) {
            return Err(ConfigError::TwoSources);
        }
        let source = match (live, self.pcap.is_empty()) {
            _ if self.synthetic.is_some() => Source::Synthetic { rate: self.synthetic.unwrap_or(0).max(1) },
            (Some(_), false) => return Err(ConfigError::TwoSources),
            (Some(selection), true) => Source::Live { selection, ring: self.live.ring() },
            (None, true) => Source::Demo,
            (None, false) => Source::Files { files: self.pcap, looped: self.looped, realtime: self.realtime },
        };
        let api_wait = crate::timespec::parse_duration_us(&self.api_wait).map_err(ConfigError::BadApiWait)?;
        Ok(ServeConfig {
            listen: self.listen,
            source,
            cluster: self.cluster,
            context: self.context,
            namespaces: self.namespaces,
            api_wait: std::time::Duration::from_micros(api_wait),
            assets: self.assets,
            token: self.token,
            limits,
            embed_origins: self.embed_origins,
            share: self.share.validate()?,
            auth: self.auth.validate()?,
        })
    }
}

/// `http://host[:port]` or `https://…`, with no path, query or credentials.
fn is_origin(o: &str) -> bool {
    let Some(rest) = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")) else { return false };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
}

/// Tests: `podtap SUB ARGS…` parsed.
#[cfg(test)]
pub(crate) fn parse_command(sub: &str, args: &[&str]) -> Command {
    let all: Vec<&str> = ["podtap", sub].iter().chain(args).copied().collect();
    Args::try_parse_from(all).unwrap().command.expect("a subcommand")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        match parse_command("serve", args) {
            Command::Serve(s) => s.validate(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_arguments_means_the_demo_on_loopback() {
        let c = serve(&[]).unwrap();
        assert_eq!(c.source, Source::Demo);
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn refuses_an_open_listener_without_token() {
        assert_eq!(
            serve(&["--listen", "0.0.0.0:80"]).unwrap_err(),
            ConfigError::OpenWithoutToken("0.0.0.0:80".parse().unwrap())
        );
        assert!(serve(&["--listen", "0.0.0.0:80", "--token", "t"]).is_ok());
        assert_eq!(serve(&["--token", ""]).unwrap_err(), ConfigError::EmptyToken);
        assert!(serve(&["--embed-origin", "https://portal.example"]).is_ok());
        assert!(matches!(serve(&["--embed-origin", "portal.example"]), Err(ConfigError::BadOrigin(_))));
        assert!(matches!(serve(&["--embed-origin", "https://a.example/x"]), Err(ConfigError::BadOrigin(_))));
    }

    #[test]
    fn the_api_server_is_waited_for_30_s_unless_told() {
        assert_eq!(serve(&[]).unwrap().api_wait, std::time::Duration::from_secs(30));
        assert_eq!(serve(&["--api-wait", "2m"]).unwrap().api_wait, std::time::Duration::from_secs(120));
        assert!(matches!(serve(&["--api-wait", "soon"]), Err(ConfigError::BadApiWait(_))));
    }

    #[test]
    fn pacing_flags_need_files() {
        assert_eq!(serve(&["--loop"]).unwrap_err(), ConfigError::PacingWithoutFiles);
        let c = serve(&["--pcap", "a.pcap", "b.pcapng", "--loop"]).unwrap();
        assert_eq!(
            c.source,
            Source::Files { files: vec!["a.pcap".into(), "b.pcapng".into()], looped: true, realtime: false }
        );
    }

    #[test]
    fn live_capture_selects_pod_interfaces_plus_named_ones_minus_excludes() {
        let c = serve(&["--pod-interfaces", "-i", "eth0", "--exclude", "lxc_health", "--ring-mb", "16"]).unwrap();
        let Source::Live { selection, ring } = c.source else { panic!("{:?}", c.source) };
        assert!(selection.matches("veth9f3c") && selection.matches("eth0") && selection.matches("lxc12"));
        assert!(!selection.matches("lxc_health") && !selection.matches("cni0"));
        assert_eq!((ring.blocks, ring.block_size), (64, 1 << 18));
    }

    #[test]
    fn live_capture_and_files_do_not_mix_and_live_options_need_live_capture() {
        assert_eq!(serve(&["--pcap", "a.pcap", "-i", "eth0"]).unwrap_err(), ConfigError::TwoSources);
        assert_eq!(serve(&["--exclude", "veth1"]).unwrap_err(), ConfigError::LiveOptionsWithoutCapture);
        assert_eq!(serve(&["--ring-mb", "8"]).unwrap_err(), ConfigError::LiveOptionsWithoutCapture);
        assert!(Args::try_parse_from(["podtap", "serve", "-i", "eth0", "--ring-mb", "0"]).is_err());
    }
}
