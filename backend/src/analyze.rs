//! `podtap analyze`: capture files → stdout as a table, JSON lines or a summary. Every file is
//! read; a damaged or unreadable one is reported in one sentence on stderr after everything that
//! could be read from it, and makes the exit status non-zero.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use podtap_shared::Record;

use crate::aggregate::SummaryBuilder;
use crate::capture::CaptureFile;
use crate::cli::{Format, Progress};
use crate::engine::nodes::{NodeCapture, run_files};
use crate::engine::{Engine, EngineStats, Joiner};
use crate::resolve::ClusterState;

/// How `analyze` runs, beyond what it reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub progress: Progress,
    /// One record per observation rather than per request.
    pub per_interface: bool,
    /// Only records that started in this window (`--from`, `--to`).
    pub window: crate::store::Window,
    /// Threads to read a file with (`Engine::run_file_on`); the engine's choice when `None`.
    pub threads: Option<usize>,
}

/// Runs the analysis; returns the engine's counters and the per-file errors (as sentences).
pub fn run(
    files: &[PathBuf],
    cluster: Arc<ClusterState>,
    format: Format,
    options: Options,
    out: &mut dyn Write,
) -> std::io::Result<(EngineStats, Vec<String>)> {
    let progress = options.progress;
    let mut summary = SummaryBuilder::default();
    let mut errors = Vec::new();
    let mut io_result = Ok(());
    if format == Format::Table {
        writeln!(out, "{}", table_header())?;
    }
    let mut write = |records: &mut Vec<Record>| {
        for r in records.iter().filter(|r| options.window.contains(r.ts)) {
            let written = match format {
                Format::Jsonl => {
                    serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from).and_then(|_| out.write_all(b"\n"))
                }
                // The table is for people: requests only (`jsonl` has the connections).
                Format::Table if !r.is_request() => Ok(()),
                Format::Table => writeln!(out, "{}", table_row(r)),
                Format::Summary => {
                    summary.add(r);
                    Ok(())
                }
            };
            if let Err(e) = written {
                io_result = Err(e);
            }
        }
    };
    let named: Vec<(PathBuf, Option<String>)> = files.iter().map(|f| split_node(f)).collect();
    let stats = if named.iter().any(|(_, node)| node.is_some()) {
        run_nodes(&named, cluster.clone(), options.per_interface, &mut errors, &mut write)
    } else {
        let mut engine = Engine::new(cluster.clone());
        if options.per_interface {
            engine = engine.per_interface();
        }
        for path in files {
            let file = match CaptureFile::open(path) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let mut bar = ProgressBar::new(progress, &file);
            let threads = options.threads.unwrap_or_else(Engine::threads);
            let result = engine.run_file_on(&file, threads, &mut write, |done| bar.update(done));
            bar.finish();
            if let Err(e) = result {
                errors.push(e.to_string());
            }
        }
        engine.stats()
    };
    io_result?;
    if format == Format::Summary {
        serde_json::to_writer_pretty(&mut *out, &summary.build(&cluster))?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok((stats, errors))
}

/// `FILE@NODE`: the capture `FILE`, taken on node `NODE`. A path that exists as given is a file,
/// `@` and all.
pub fn split_node(arg: &Path) -> (PathBuf, Option<String>) {
    let text = arg.to_string_lossy();
    if arg.exists() {
        return (arg.to_path_buf(), None);
    }
    match text.rsplit_once('@') {
        Some((file, node)) if !file.is_empty() && !node.is_empty() && !node.contains('/') => {
            (PathBuf::from(file), Some(node.to_string()))
        }
        _ => (arg.to_path_buf(), None),
    }
}

/// Captures from several nodes, merged across them: each file has its own observer and they are
/// joined in capture-time order.
fn run_nodes(
    named: &[(PathBuf, Option<String>)],
    cluster: Arc<ClusterState>,
    per_interface: bool,
    errors: &mut Vec<String>,
    write: &mut dyn FnMut(&mut Vec<Record>),
) -> EngineStats {
    let mut opened = Vec::new();
    for (path, node) in named {
        match CaptureFile::open(path) {
            Ok(f) => opened.push((f, node.clone())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let captures: Vec<NodeCapture<'_>> =
        opened.iter().map(|(file, node)| NodeCapture { file, node: node.as_deref().map(Into::into) }).collect();
    let mut joiner = Joiner::new(cluster);
    if per_interface {
        joiner.per_interface();
    }
    let mut stats = EngineStats::default();
    for (front, result) in run_files(&captures, &mut joiner, write) {
        stats.add(&front);
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    }
    EngineStats::joined(&stats, joiner.stats())
}

/// Files smaller than this finish too fast for a bar to help.
const PROGRESS_MIN_BYTES: usize = 16 << 20;

/// Progress through one file on stderr: a bar on a terminal, else (with `--progress always`) one
/// plain line a second, which reads well in CI logs.
enum ProgressBar {
    Off,
    Bar(indicatif::ProgressBar),
    Lines { name: String, total: usize, started: std::time::Instant, last: std::time::Instant },
}

impl ProgressBar {
    fn new(mode: Progress, file: &CaptureFile) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        match mode {
            Progress::Never => ProgressBar::Off,
            Progress::Auto if !terminal || file.len() < PROGRESS_MIN_BYTES => ProgressBar::Off,
            _ if terminal => {
                let bar = indicatif::ProgressBar::new(file.len() as u64);
                let style = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(file.name().to_string());
                ProgressBar::Bar(bar)
            }
            _ => {
                let now = std::time::Instant::now();
                ProgressBar::Lines { name: file.name().to_string(), total: file.len(), started: now, last: now }
            }
        }
    }

    fn update(&mut self, done: usize) {
        match self {
            ProgressBar::Off => {}
            ProgressBar::Bar(bar) => bar.set_position(done as u64),
            ProgressBar::Lines { name, total, started, last } => {
                if last.elapsed() >= std::time::Duration::from_secs(1) || done == *total {
                    *last = std::time::Instant::now();
                    let secs = started.elapsed().as_secs_f64().max(1e-6);
                    eprintln!(
                        "podtap: {name}: {:.0}% ({} of {} MB, {:.0} MB/s)",
                        100.0 * done as f64 / (*total).max(1) as f64,
                        done / 1_000_000,
                        *total / 1_000_000,
                        done as f64 / 1e6 / secs
                    );
                }
            }
        }
    }

    fn finish(self) {
        if let ProgressBar::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn table_header() -> String {
    format!(
        "{:<15} {:<34} {:<40} {:<26} {:<6} {:<44} {:>8} {:>9} {:>5}",
        "TIME", "SOURCE", "DESTINATION", "VIA", "METHOD", "PATH", "STATUS", "LATENCY", "CONN"
    )
}

fn table_row(r: &Record) -> String {
    let secs = r.ts / 1_000_000;
    let time = format!("{:02}:{:02}:{:02}.{:06}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60, r.ts % 1_000_000);
    let who =
        |e: &podtap_shared::Endpoint| format!("{}:{}", e.qualified_name().unwrap_or_else(|| e.ip.to_string()), e.port);
    let via = match &r.via.service {
        Some(s) => format!("{:?} {s}", r.via.kind),
        None => format!("{:?}", r.via.kind),
    };
    let request = r.detail.request_line();
    let (method, path) = request.split_once(' ').unwrap_or((request.as_str(), ""));
    let status = r.detail.outcome().unwrap_or_else(|| "-".into());
    let latency = r.latency_us.map_or("-".into(), |l| format!("{:.1}ms", l as f64 / 1000.0));
    let probe = if r.probe { " (probe)" } else { "" };
    format!(
        "{time:<15} {:<34} {:<40} {via:<26} {method:<6} {:<44} {status:>8} {latency:>9} {:>5}{probe}",
        who(&r.src),
        who(&r.dst),
        path,
        r.conn
    )
}

/// One line per link type podtap cannot decode, with how many frames it skipped: said plainly,
/// so a capture that gives nothing does not look like one with no traffic.
pub fn unsupported_lines(s: &EngineStats) -> Vec<String> {
    let mut lines: Vec<String> = s
        .unsupported_links
        .seen()
        .map(|(code, n)| {
            format!("podtap: {n} frames of {} skipped: not supported", crate::capture::link_type_name(code))
        })
        .collect();
    if s.unsupported_links.others > 0 {
        lines.push(format!("podtap: {} frames of other unsupported link types skipped", s.unsupported_links.others));
    }
    lines
}

/// One line for stderr: what was read and what could not be used.
pub fn stats_line(s: &EngineStats) -> String {
    let skipped = s.truncated_frames + s.malformed_frames + s.unsupported_link_frames;
    let unmatched = s.unmatched_responses + s.dns.unmatched_responses;
    format!(
        "podtap: {} frames ({} bytes), {} TCP connections, {} HTTP exchanges, {} DNS queries ({} over TCP), \
         {} TLS handshakes, {} gRPC calls, {} packets put together from IP fragments; skipped {skipped} undecodable frames and {} malformed DNS messages; {} reassembly gaps ({} bytes), \
         {} resyncs, {unmatched} unmatched responses, {} responses whose requests were not captured, \
         {} responses paired without certainty after lost bytes, {} malformed requests reported (flagged), \
         {} DNS queries unanswered; {} TCP directions in protocols podtap does not dissect, {} UDP datagrams \
         not DNS, {} frames neither TCP nor UDP; {} copies of packets seen on more than one interface counted once",
        s.frames,
        s.bytes,
        s.tcp.connections,
        s.http_exchanges,
        s.dns.queries + s.dns_over_tcp,
        s.dns_over_tcp,
        s.tls_handshakes,
        s.grpc_calls,
        s.ip_fragments.reassembled,
        s.dns.malformed,
        s.tcp.gaps,
        s.tcp.gap_bytes,
        s.resyncs,
        s.one_way_responses,
        s.uncertain_pairings,
        s.malformed_requests,
        s.dns.timed_out,
        s.non_http_streams,
        s.udp_frames,
        s.other_frames,
        s.tcp.copies + s.dns.copies,
    )
}
