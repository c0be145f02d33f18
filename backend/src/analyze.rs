//! `podtap analyze`: capture files → stdout as a table, JSON lines or a summary. Every file is
//! read; a damaged or unreadable one is reported in one sentence on stderr after everything that
//! could be read from it, and makes the exit status non-zero.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use podtap_shared::Record;

use crate::aggregate::SummaryBuilder;
use crate::capture::CaptureFile;
use crate::cli::Format;
use crate::engine::{Engine, EngineStats};
use crate::resolve::ClusterState;

/// Runs the analysis; returns the engine's counters and the per-file errors (as sentences).
pub fn run(
    files: &[PathBuf],
    cluster: Arc<ClusterState>,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<(EngineStats, Vec<String>)> {
    let mut engine = Engine::new(cluster.clone());
    let mut summary = SummaryBuilder::default();
    let mut errors = Vec::new();
    let mut io_result = Ok(());
    if format == Format::Table {
        writeln!(out, "{}", table_header())?;
    }
    for path in files {
        let file = match CaptureFile::open(path) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let result = engine.run_file(&file, |records| {
            for r in records.iter() {
                let written = match format {
                    Format::Jsonl => serde_json::to_writer(&mut *out, r)
                        .map_err(std::io::Error::from)
                        .and_then(|_| out.write_all(b"\n")),
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
        });
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    }
    io_result?;
    if format == Format::Summary {
        serde_json::to_writer_pretty(&mut *out, &summary.build(&cluster))?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok((engine.stats(), errors))
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

/// One line for stderr: what was read and what could not be used.
pub fn stats_line(s: &EngineStats) -> String {
    let skipped = s.truncated_frames + s.malformed_frames + s.unsupported_link_frames;
    let unmatched = s.unmatched_responses + s.dns.unmatched_responses;
    format!(
        "podtap: {} frames ({} bytes), {} TCP connections, {} HTTP exchanges, {} DNS queries, {} TLS handshakes; \
         skipped {skipped} undecodable frames and {} malformed DNS messages; {} reassembly gaps ({} bytes), \
         {} resyncs, {unmatched} unmatched responses, {} DNS queries unanswered",
        s.frames,
        s.bytes,
        s.tcp.connections,
        s.http_exchanges,
        s.dns.queries,
        s.tls_handshakes,
        s.dns.malformed,
        s.tcp.gaps,
        s.tcp.gap_bytes,
        s.resyncs,
        s.dns.timed_out
    )
}
