//! Flags of `podtap hub` and `podtap agent` (a contract: DESIGN.md), validated like `serve`'s.
//! The hub is `serve` with agents as its source, so it takes `serve`'s store, cluster, token and
//! embedding flags and validates them the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{AuthArgs, ConfigError, LiveArgs, ServeArgs, ServeConfig, ShareArgs, Source};
use crate::capture::live::{RingSize, Selection};
use crate::ingest::bus::BusConfig;

#[derive(Debug, clap::Args)]
pub struct HubArgs {
    /// Address the web UI and API listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8080", env = "PODTAP_LISTEN")]
    pub listen: SocketAddr,
    /// Address agents connect to (`WS /api/v1/ingest`). Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:9091", env = "PODTAP_INGEST")]
    pub ingest: SocketAddr,
    /// Cluster state files, as for `serve`; without them, the kubeconfig or in-cluster config.
    #[arg(long = "cluster", value_name = "FILE", num_args = 1..)]
    pub cluster: Vec<PathBuf>,
    /// The kubeconfig context to watch the cluster through (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespaces to watch one by one when a kind may not be listed cluster-wide.
    #[arg(long = "namespace", short = 'n', value_name = "NS", num_args = 1..)]
    pub namespaces: Vec<String>,
    /// How long to wait for the API server's first lists (as `serve --api-wait`): agents' records
    /// are held meanwhile and named when the lists come.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub api_wait: String,
    /// Bearer token agents, API clients and the browser must present.
    #[arg(long, env = "PODTAP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Directory with the built browser app; default: the one built in.
    #[arg(long, env = "PODTAP_ASSETS")]
    pub assets: Option<PathBuf>,
    /// How long records and their rollups are kept (`15m`, `1h`).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub retention: String,
    /// Records kept at most (~0.5 KB each).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_records: usize,
    /// Origins whose pages may embed podtap and open its stream.
    #[arg(long = "embed-origin", value_name = "ORIGIN", num_args = 1..)]
    pub embed_origins: Vec<String>,
    /// The agents replay captures as fast as they read (`agent --pcap`): time is the captures'
    /// own, not the wall clock.
    #[arg(long)]
    pub capture_clock: bool,
    #[command(flatten)]
    pub bus: BusArgs,
    /// This hub is replica I of N on the bus (`0/1`: the only one): it merges the partitions
    /// P with P % N == I, and reads every partition's records.
    #[arg(long, default_value = "0/1", value_name = "I/N", env = "PODTAP_REPLICA")]
    pub replica: String,
    /// A hub replica takes over the share of the partitions of a peer that has been silent this
    /// long (`10s`), and hands it back when the peer returns; `off`: a share waits for its own
    /// replica (a StatefulSet restarts it).
    #[arg(long, default_value = "10s", value_name = "DURATION|off")]
    pub bus_takeover_after: String,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

impl HubArgs {
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        if !self.ingest.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::OpenIngestWithoutToken(self.ingest));
        }
        let serve = ServeArgs {
            listen: self.listen,
            pcap: Vec::new(),
            live: LiveArgs::default_flags(),
            cluster: self.cluster,
            context: self.context,
            namespaces: self.namespaces,
            api_wait: self.api_wait,
            looped: false,
            realtime: false,
            assets: self.assets,
            token: self.token,
            retention: self.retention,
            synthetic: None,
            max_records: self.max_records,
            embed_origins: self.embed_origins,
            share: self.share,
            auth: self.auth,
        };
        let mut config = serve.validate()?;
        let mut bus = self.bus.validate(&self.replica)?;
        if let Some(bus) = &mut bus {
            bus.takeover = takeover(&self.bus_takeover_after)?;
        }
        config.source = Source::Agents { ingest: self.ingest, capture_clock: self.capture_clock, bus };
        Ok(config)
    }
}

/// `--bus-takeover-after`: a duration of 5 s or more, or `off`.
fn takeover(after: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    if after == "off" {
        return Ok(None);
    }
    let us = crate::timespec::parse_duration_us(after)
        .map_err(|e| ConfigError::BadBus(format!("--bus-takeover-after: {e}")))?;
    if us < 5_000_000 {
        return Err(ConfigError::BadBus(format!(
            "--bus-takeover-after {after}: give 5s or more (a replica is taken for dead 3 s after its last word), \
             or off"
        )));
    }
    Ok(Some(std::time::Duration::from_micros(us)))
}

/// How agents and hubs reach the bus (`--bus`), shared by both.
#[derive(Debug, clap::Args)]
pub struct BusArgs {
    /// A NATS JetStream server (`nats://HOST:PORT`, `cargo xtask bus up` prints one): agents
    /// publish their observations there, and any number of hub replicas merge them.
    #[arg(long, value_name = "URL", env = "PODTAP_BUS")]
    pub bus: Option<String>,
    /// Partitions of the observations on the bus; every agent and hub of a cluster must give
    /// the same number.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub bus_partitions: u32,
    /// How long the bus keeps observations and records (`1h`): a hub replica away for less loses
    /// nothing.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub bus_retention: String,
}

impl BusArgs {
    /// The bus, if one was given; `replica` is `I/N`.
    pub fn validate(&self, replica: &str) -> Result<Option<BusConfig>, ConfigError> {
        let Some(url) = &self.bus else {
            if replica != "0/1" {
                return Err(ConfigError::BadBus(format!("--replica {replica} needs --bus")));
            }
            return Ok(None);
        };
        if !url.starts_with("nats://") && !url.starts_with("tls://") {
            return Err(ConfigError::BadBus(format!("--bus {url}: give nats://HOST:PORT")));
        }
        if !(1..=1024).contains(&self.bus_partitions) {
            return Err(ConfigError::BadBus("--bus-partitions: give 1 to 1024".into()));
        }
        let bad = || ConfigError::BadBus(format!("--replica {replica}: give I/N with 0 <= I < N, like 0/2"));
        let (i, n) = replica.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if n == 0 || i >= n {
            return Err(bad());
        }
        if n > self.bus_partitions {
            return Err(ConfigError::BadBus(format!(
                "--replica {replica}: {n} replicas for {} partitions would leave a replica idle; raise --bus-partitions",
                self.bus_partitions
            )));
        }
        let retention = crate::timespec::parse_duration_us(&self.bus_retention)
            .map_err(|e| ConfigError::BadBus(format!("--bus-retention: {e}")))?;
        Ok(Some(BusConfig {
            url: url.clone(),
            partitions: self.bus_partitions,
            replica: (i, n),
            retention: std::time::Duration::from_micros(retention.max(1_000_000)),
            takeover: None,
        }))
    }
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The hub: http://HOST:PORT of its --ingest address (or --bus).
    #[arg(long, value_name = "URL", env = "PODTAP_HUB")]
    pub hub: Option<String>,
    #[command(flatten)]
    pub bus: BusArgs,
    /// The hub's bearer token.
    #[arg(long, env = "PODTAP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// This node's name as the cluster knows it (the downward API's spec.nodeName); default: the
    /// host name.
    #[arg(long, env = "PODTAP_NODE", value_name = "NAME")]
    pub node: Option<String>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Replay capture files as this node instead of capturing (tests, offline work).
    #[arg(long = "pcap", value_name = "FILE", num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    /// Replay at capture speed with timestamps moved to now, as if live.
    #[arg(long)]
    pub realtime: bool,
    /// What the agent keeps for the hub while it is unreachable, in MiB; beyond it the oldest
    /// batches are dropped and counted.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub buffer_mb: usize,
    /// Shift every timestamp and the clock reported to the hub (tests: a node whose clock is off).
    #[arg(long, hide = true, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_ms: i64,
    /// Disk kept for this node's recent packets, for the hub's pcapng exports (0: none).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub packet_retention_mb: u64,
    /// After replaying --pcap files, stay connected until stopped, so the hub can still ask for
    /// their packets.
    #[arg(long)]
    pub stay: bool,
    /// Where the packet ring is kept (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR", env = "PODTAP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// What the agent observes.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentSource {
    Live { selection: Selection, ring: RingSize },
    Files { files: Vec<PathBuf>, realtime: bool },
}

/// A validated `agent` configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The hub's ingest WebSocket, or the bus's URL.
    pub url: String,
    /// Publish to this bus instead of a hub.
    pub bus: Option<BusConfig>,
    pub token: Option<String>,
    pub node: String,
    pub source: AgentSource,
    pub buffer_bytes: usize,
    pub skew_us: i64,
    /// The packet ring: where (none: a temporary directory) and how big (0: none).
    pub packets: super::ShareConfig,
    pub stay: bool,
}

impl AgentArgs {
    pub fn validate(self) -> Result<AgentConfig, ConfigError> {
        if self.token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        let bus = self.bus.validate("0/1")?;
        let url = match (&self.hub, &bus) {
            (Some(hub), None) => crate::ingest::agent::ingest_url(hub).map_err(ConfigError::BadHub)?,
            (None, Some(bus)) => bus.url.clone(),
            (Some(_), Some(_)) => return Err(ConfigError::BadHub("give --hub or --bus, not both".into())),
            (None, None) => {
                return Err(ConfigError::BadHub("give the hub (--hub http://HOST:PORT) or a bus (--bus)".into()));
            }
        };
        if self.buffer_mb == 0 {
            return Err(ConfigError::ZeroBuffer);
        }
        let source = match (self.live.selection(), self.pcap.is_empty()) {
            (Some(_), false) => return Err(ConfigError::TwoSources),
            (None, true) => return Err(ConfigError::AgentWithoutSource),
            (Some(_), true) if self.realtime => return Err(ConfigError::RealtimeWithoutFiles),
            (Some(selection), true) => AgentSource::Live { selection, ring: self.live.ring() },
            (None, false) => AgentSource::Files { files: self.pcap, realtime: self.realtime },
        };
        let node = match self.node.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => hostname().ok_or(ConfigError::NoNodeName)?,
        };
        Ok(AgentConfig {
            url,
            bus,
            token: self.token,
            node,
            source,
            buffer_bytes: self.buffer_mb << 20,
            skew_us: self.clock_offset_ms.saturating_mul(1000),
            packets: super::ShareConfig {
                data_dir: self.data_dir,
                packet_retention_bytes: self.packet_retention_mb << 20,
                ..super::ShareConfig::default()
            },
            stay: self.stay,
        })
    }
}

/// This machine's host name.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse_command};
    use super::*;

    fn hub(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        match parse_command("hub", args) {
            Command::Hub(h) => h.validate(),
            other => panic!("{other:?}"),
        }
    }

    fn agent(args: &[&str]) -> Result<AgentConfig, ConfigError> {
        match parse_command("agent", args) {
            Command::Agent(a) => a.validate(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hub_takes_agents_and_opens_nothing_without_a_token() {
        let c = hub(&["--cluster", "c.json"]).unwrap();
        assert_eq!(
            c.source,
            Source::Agents { ingest: "127.0.0.1:9091".parse().unwrap(), capture_clock: false, bus: None }
        );
        assert!(matches!(hub(&["--ingest", "0.0.0.0:9091"]), Err(ConfigError::OpenIngestWithoutToken(_))));
        assert!(matches!(hub(&["--listen", "0.0.0.0:80"]), Err(ConfigError::OpenWithoutToken(_))));
        let c = hub(&["--ingest", "0.0.0.0:9091", "--listen", "0.0.0.0:8080", "--token", "t"]).unwrap();
        assert_eq!(c.token.as_deref(), Some("t"));
    }

    #[test]
    fn an_agent_observes_one_thing_and_knows_its_node() {
        let c = agent(&["--hub", "http://h:9091", "--node", "n1", "--pod-interfaces", "-i", "eth0"]).unwrap();
        assert_eq!(c.url, "ws://h:9091/api/v1/ingest");
        assert_eq!(c.node, "n1");
        assert!(matches!(c.source, AgentSource::Live { .. }));
        let c = agent(&["--hub", "http://h:9091", "--node", "n1", "--pcap", "a.pcap", "--realtime"]).unwrap();
        assert_eq!(c.source, AgentSource::Files { files: vec!["a.pcap".into()], realtime: true });
        assert_eq!(agent(&["--hub", "http://h:1"]).unwrap_err(), ConfigError::AgentWithoutSource);
        assert_eq!(agent(&["--hub", "http://h:1", "-i", "e", "--pcap", "a"]).unwrap_err(), ConfigError::TwoSources);
        assert!(matches!(agent(&["--hub", "https://h:1", "-i", "e"]), Err(ConfigError::BadHub(_))));
        assert_eq!(agent(&["--hub", "http://h:1", "-i", "e", "--token", ""]).unwrap_err(), ConfigError::EmptyToken);
        let skewed = agent(&["--hub", "http://h:1", "-i", "e", "--clock-offset-ms", "-50"]).unwrap();
        assert_eq!(skewed.skew_us, -50_000);
    }

    #[test]
    fn agents_and_hub_replicas_meet_on_a_bus() {
        let a = agent(&["--bus", "nats://127.0.0.1:4222", "--node", "n1", "-i", "e"]).unwrap();
        let bus = a.bus.unwrap();
        assert_eq!((bus.url.as_str(), bus.partitions, bus.replica), ("nats://127.0.0.1:4222", 8, (0, 1)));
        assert!(matches!(agent(&["-i", "e"]), Err(ConfigError::BadHub(_))));
        assert!(matches!(
            agent(&["--hub", "http://h:1", "--bus", "nats://b:4222", "-i", "e"]),
            Err(ConfigError::BadHub(_))
        ));
        assert!(matches!(agent(&["--bus", "http://b:4222", "-i", "e"]), Err(ConfigError::BadBus(_))));
        let h = hub(&["--bus", "nats://b:4222", "--replica", "1/2", "--bus-partitions", "4"]).unwrap();
        let Source::Agents { bus: Some(bus), .. } = h.source else { panic!("a bus") };
        assert_eq!((bus.partitions, bus.replica), (4, (1, 2)));
        for bad in ["2/2", "1", "a/b", "0/0"] {
            let e = hub(&["--bus", "nats://b:4222", "--replica", bad]).unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        let e = hub(&["--bus", "nats://b:4222", "--replica", "0/9"]).unwrap_err().to_string();
        assert!(e.contains("raise --bus-partitions"), "{e}");
        assert!(hub(&["--replica", "0/2"]).unwrap_err().to_string().contains("needs --bus"));
        // A peer's share is taken over after 10 s by default; never, or later, if asked.
        assert_eq!(bus.takeover, Some(std::time::Duration::from_secs(10)));
        let takeover = |v: &str| match hub(&["--bus", "nats://b:4222", "--bus-takeover-after", v]) {
            Ok(c) => match c.source {
                Source::Agents { bus: Some(bus), .. } => Ok(bus.takeover),
                _ => panic!("a hub on the bus"),
            },
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(takeover("off"), Ok(None));
        assert_eq!(takeover("1m"), Ok(Some(std::time::Duration::from_secs(60))));
        assert!(takeover("2s").unwrap_err().contains("give 5s or more"));
    }
}
