//! One request in full: what was asked and answered, the headers kept after redaction (saying
//! which were redacted), sizes and times, the path it took (client → Service address → DNAT →
//! pod), its connection with the other requests on it, where it was seen, and why it is or is not
//! a probe, and downloads of its connection. Every name, status, path and Service is
//! click-to-filter. DOM hook: `record-detail` with `data-id`; the path is `detail-path`, the
//! connection's requests `detail-conn-request`, the downloads `detail-export-pcapng|har|jsonl`.

use leptos::prelude::*;
use podtap_shared::{Detail, Endpoint, EndpointKind, Record, ViaKind};

use crate::api::{Connection, export_query, export_url, fetch_connection, fetch_record};
use crate::components::term::Term;
use crate::views::timeline::overview::clock;

/// The panel for the selected record; nothing when none is selected.
#[component]
pub fn DetailPanel(
    selected: RwSignal<Option<u64>>,
    /// Finds a record the page already holds (else it is fetched).
    local: Callback<u64, Option<Record>>,
) -> impl IntoView {
    let record = LocalResource::new(move || {
        let id = selected.get();
        async move {
            let id = id?;
            Some(match local.run(id) {
                Some(r) => Ok(r),
                None => fetch_record(id).await,
            })
        }
    });
    let conn = LocalResource::new(move || {
        let r = record.get().flatten().and_then(Result::ok);
        async move {
            let r = r?;
            Some(fetch_connection(r.conn).await)
        }
    });
    move || {
        let id = selected.get()?;
        let body = match record.get().flatten() {
            None => view! { <p class="empty">"Loading…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="hint">{format!("Record {id}: {e}")}</p> }.into_any(),
            Some(Ok(r)) => {
                let c = conn.get().flatten();
                view! { <Full record=r conn=c selected=selected/> }.into_any()
            }
        };
        Some(view! {
            <aside class="detail panel" data-testid="record-detail" data-id=id.to_string()>
                <button class="close" data-testid="detail-close" on:click=move |_| selected.set(None) title="close">"×"</button>
                {body}
            </aside>
        })
    }
}

fn endpoint_term(e: &Endpoint) -> (String, String) {
    match (e.kind, &e.name) {
        (EndpointKind::Pod, Some(n)) => (e.qualified_name().unwrap_or_else(|| n.to_string()), format!("pod:{n}")),
        (EndpointKind::Service, Some(_)) => {
            let q = e.qualified_name().unwrap_or_default();
            (q.clone(), format!("svc:{q}"))
        }
        (_, Some(n)) => (n.to_string(), n.to_string()),
        (_, None) => (format!("{}:{}", e.ip, e.port), e.ip.to_string()),
    }
}

fn who(e: &Endpoint) -> AnyView {
    let (text, term) = endpoint_term(e);
    view! { <Term text=text term=term/> }.into_any()
}

fn via_word(k: ViaKind) -> &'static str {
    match k {
        ViaKind::ClusterIp => "clusterIP",
        ViaKind::NodePort => "nodePort",
        ViaKind::LoadBalancer => "loadBalancer",
        ViaKind::SocketLb => "socketLB",
        ViaKind::Direct => "direct",
        ViaKind::Unknown => "unknown",
    }
}

fn ms(us: u64) -> String {
    if us < 1000 { format!("{:.2} ms", us as f64 / 1000.0) } else { format!("{:.1} ms", us as f64 / 1000.0) }
}

/// Why a record is or is not a kubelet probe, in one sentence.
pub fn probe_reason(r: &Record) -> String {
    let ua = match &r.detail {
        Detail::Http(h) => h.headers.get("user-agent").map(str::to_string),
        _ => None,
    };
    match (r.probe, ua) {
        (true, Some(ua)) if ua.starts_with("kube-probe/") => format!("A kubelet probe: its User-Agent is {ua}."),
        (true, _) => "A kubelet probe: it came from the node to the port and path of one of the pod's probes.".into(),
        (false, _) if r.http().is_none() => "Not a probe: kubelet probes are HTTP requests.".into(),
        (false, Some(ua)) => format!("Not a probe: its User-Agent is {ua}, and no probe of the pod matches it."),
        (false, None) => "Not a probe: no kube-probe User-Agent, and no probe of the pod matches it.".into(),
    }
}

#[component]
fn Full(record: Record, conn: Option<Result<Connection, String>>, selected: RwSignal<Option<u64>>) -> impl IntoView {
    let r = record;
    let asked = asked_and_answered(&r);
    let headers = match &r.detail {
        Detail::Http(h) => h.headers.clone(),
        Detail::Grpc(g) => g.headers.clone(),
        _ => Default::default(),
    };
    let redacted: Vec<&str> = headers.iter().filter(|(_, v)| *v == "[redacted]").map(|(k, _)| k).collect();
    let header_rows = headers
        .iter()
        .map(|(k, v)| view! { <tr><td class="mono">{k.to_string()}</td><td class="mono">{v.to_string()}</td></tr> })
        .collect::<Vec<_>>();
    let redaction = if redacted.is_empty() {
        "No header was redacted.".to_string()
    } else {
        format!("Redacted on the node: {}.", redacted.join(", "))
    };
    let first_byte = r.latency_us.map(|l| format!("{} (+{})", clock_us(r.ts + l), ms(l)));
    let end = r.end_us.map(|e| format!("{} (+{})", clock_us(e), ms(e.saturating_sub(r.ts))));
    let seen = format!(
        "{} observation{}{}{}",
        r.observations,
        if r.observations == 1 { "" } else { "s" },
        r.interface.as_deref().map(|i| format!(", first on {i}")).unwrap_or_default(),
        r.tunnel.as_ref().map(|t| format!(", inside a tunnel {} → {}", t.outer_src, t.outer_dst)).unwrap_or_default(),
    );
    let nodes: Vec<String> = [&r.src.node, &r.dst.node].into_iter().flatten().map(|n| n.to_string()).collect();
    let nodes = if nodes.is_empty() { "unknown".to_string() } else { nodes.join(" → ") };
    // The connection over everything kept (its packets are whole connections anyway).
    let conn_query = export_query("", None, Some(r.conn));
    let others = match conn {
        None => view! { <p class="empty">"Loading the connection…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="hint">{e}</p> }.into_any(),
        Some(Ok(c)) => {
            let life = c.connection.as_ref().map(|t| {
                let tcp = t.tcp().cloned();
                format!(
                    "opened {}{}, {} B up / {} B down{}",
                    clock_us(t.ts),
                    t.end_us
                        .map(|e| format!(
                            ", closed {} ({})",
                            clock_us(e),
                            tcp.as_ref().map_or("", |t| t.close.as_str())
                        ))
                        .unwrap_or_else(|| ", still open".into()),
                    t.request_size,
                    t.response_size,
                    tcp.and_then(|t| t.rtt_us).map(|rtt| format!(", handshake {}", ms(rtt))).unwrap_or_default()
                )
            });
            let list = c
                .requests
                .iter()
                .map(|o| {
                    let id = o.id;
                    let line = format!("{} {} {}", clock_us(o.ts), o.detail.request_line(), o.detail.outcome().unwrap_or_default());
                    let class = if id == r.id { "conn-request current" } else { "conn-request" };
                    view! { <li class=class data-testid="detail-conn-request" data-id=id.to_string() on:click=move |_| selected.set(Some(id))>{line}</li> }
                })
                .collect::<Vec<_>>();
            view! {
                <p class="muted">{life.unwrap_or_else(|| "its connection record has not come yet (still open)".into())}</p>
                <ol class="conn-requests">{list}</ol>
            }
            .into_any()
        }
    };
    view! {
        <h3 class="mono">{r.detail.request_line()}</h3>
        {asked}
        <h4>"Path"</h4>
        <PathDrawing record=r.clone()/>
        <h4>"Timing"</h4>
        <dl class="facts">
            <dt>"start"</dt><dd>{clock_us(r.ts)}</dd>
            <dt>"first response byte"</dt><dd>{first_byte.unwrap_or_else(|| "no response".into())}</dd>
            <dt>"end"</dt><dd>{end.unwrap_or_else(|| "—".into())}</dd>
            <dt>"sizes"</dt><dd>{format!("{} B request, {} B response", r.request_size, r.response_size)}</dd>
        </dl>
        <h4>"Headers"</h4>
        <table class="headers"><tbody>{header_rows}</tbody></table>
        <p class="muted" data-testid="detail-redacted">{redaction}</p>
        <h4>"Connection " <Term text=format!("{}", r.conn) term=format!("conn:{}", r.conn)/></h4>
        {others}
        <p class="downloads">"Download this connection: "
            <a data-testid="detail-export-pcapng" href=export_url("pcapng", &conn_query) download>"pcapng"</a>" · "
            <a data-testid="detail-export-har" href=export_url("har", &conn_query) download>"HAR"</a>" · "
            <a data-testid="detail-export-jsonl" href=export_url("jsonl", &conn_query) download>"JSON lines"</a>
        </p>
        <h4>"Seen"</h4>
        <dl class="facts">
            <dt>"by"</dt><dd>{seen}</dd>
            <dt>"nodes"</dt><dd>{nodes}</dd>
        </dl>
        <p class="probe-reason" data-testid="detail-probe">{probe_reason(&r)}</p>
    }
}

/// What was asked and answered, per protocol.
fn asked_and_answered(r: &Record) -> AnyView {
    let status_term = |s: u16| view! { <Term text=s.to_string() term=format!("status:{s}")/> };
    match &r.detail {
        Detail::Http(h) => {
            let host = h.headers.get("host").unwrap_or("—").to_string();
            view! {
                <dl class="facts">
                    <dt>"method"</dt><dd><Term text=h.method.to_string() term=format!("method:{}", h.method)/></dd>
                    <dt>"path"</dt><dd class="mono"><Term text=h.path.to_string() term=format!("path:{}", h.path)/></dd>
                    <dt>"authority"</dt><dd class="mono">{host}</dd>
                    <dt>"status"</dt><dd>{h.status.map(|s| status_term(s).into_any()).unwrap_or_else(|| "no response".into_any())}</dd>
                    {h.malformed.clone().map(|m| view! { <dt>"malformed"</dt><dd>{m}</dd> })}
                    {h.paired.clone().map(|p| view! { <dt>"pairing"</dt><dd>{p}</dd> })}
                </dl>
            }
            .into_any()
        }
        Detail::Grpc(g) => view! {
            <dl class="facts">
                <dt>"service"</dt><dd class="mono"><Term text=g.grpc_service.clone() term=g.grpc_service.clone()/></dd>
                <dt>"method"</dt><dd class="mono"><Term text=g.grpc_method.clone() term=format!("method:{}", g.grpc_method)/></dd>
                <dt>"grpc-status"</dt><dd>{r.detail.outcome().unwrap_or_else(|| "no trailers".into())}</dd>
                <dt>"message"</dt><dd>{g.grpc_message.clone().unwrap_or_else(|| "—".into())}</dd>
            </dl>
        }
        .into_any(),
        Detail::Dns(d) => view! {
            <dl class="facts">
                <dt>"question"</dt><dd class="mono"><Term text=d.query.clone() term=d.query.clone()/></dd>
                <dt>"type"</dt><dd>{d.qtype.clone()}</dd>
                <dt>"rcode"</dt><dd>{d.rcode.clone().unwrap_or_else(|| "no answer".into())}</dd>
                <dt>"answers"</dt><dd class="mono">{if d.answers.is_empty() { "—".into() } else { d.answers.join(", ") }}</dd>
            </dl>
        }
        .into_any(),
        Detail::Tls(t) => view! {
            <dl class="facts">
                <dt>"SNI"</dt><dd class="mono">{t.sni.clone().unwrap_or_else(|| "none".into())}</dd>
                <dt>"ALPN"</dt><dd>{if t.alpn.is_empty() { "—".into() } else { t.alpn.join(", ") }}</dd>
                <dt>"version"</dt><dd>{t.version.clone().or_else(|| t.alert.clone()).unwrap_or_else(|| "no ServerHello".into())}</dd>
            </dl>
        }
        .into_any(),
        Detail::Tcp(t) => view! {
            <dl class="facts">
                <dt>"carried"</dt><dd>{t.protocol.clone().unwrap_or_else(|| match &t.likely {
                    Some(guess) => format!("an opaque stream (likely: {guess}, a guess from the port)"),
                    None => "an opaque stream".into(),
                })}</dd>
                <dt>"ended"</dt><dd>{t.close.as_str()}</dd>
                <dt>"requests"</dt><dd>{t.requests}</dd>
                <dt>"losses"</dt><dd>{format!("{} retransmissions, {} gaps", t.retransmissions, t.gaps)}</dd>
            </dl>
        }
        .into_any(),
        Detail::Postgres(q) | Detail::Mysql(q) => sql_facts(q),
        Detail::Websocket(w) => {
            let side = |s: &podtap_shared::WebSocketSide| {
                format!("{} text, {} binary, {} ping, {} pong; {} bytes", s.text, s.binary, s.ping, s.pong, s.bytes)
            };
            view! {
                <dl class="facts">
                    <dt>"subprotocol"</dt><dd>{w.subprotocol.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"client sent"</dt><dd>{side(&w.client)}</dd>
                    <dt>"server sent"</dt><dd>{side(&w.server)}</dd>
                    <dt>"closed"</dt><dd>{w.outcome().map(|o| format!("{o} by the {}", w.closed_by.as_deref().unwrap_or("?"))).unwrap_or_else(|| "not seen closing".into())}</dd>
                </dl>
            }
            .into_any()
        }
        Detail::Redis(x) => view! {
            <dl class="facts">
                <dt>"command"</dt><dd><Term text=x.command.clone() term=format!("op:{}", x.command.replace(' ', "_"))/></dd>
                <dt>"key"</dt><dd class="mono" data-testid="detail-key">{x.key.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"reply"</dt><dd>{x.reply.clone().unwrap_or_else(|| "no reply".into())}{x.queued.then_some(" (queued in MULTI)")}</dd>
                {x.error.clone().map(|e| view! { <dt>"error"</dt><dd>{e}</dd> })}
            </dl>
        }
        .into_any(),
        Detail::Kafka(k) => kafka_facts(k),
    }
}

/// A Kafka request: the API and version, the client, the topics (each a filter term), the
/// sizes, and what came back.
fn kafka_facts(k: &podtap_shared::KafkaExchange) -> AnyView {
    let topics = k
        .topics
        .iter()
        .map(|t| {
            let parts = if t.partitions.is_empty() {
                String::new()
            } else {
                format!(" [{}]", t.partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", "))
            };
            view! { <span class="topic"><Term text=t.name.clone() term=format!("topic:{}", t.name)/>{parts}</span> }
        })
        .collect::<Vec<_>>();
    let more = (k.more_topics > 0).then(|| format!(" and {} more", k.more_topics));
    let outcome = match (&k.error, k.error_code, k.no_response) {
        (Some(e), Some(code), _) => format!("{e} (error {code})"),
        (Some(e), None, _) => e.clone(),
        (None, _, true) => "no response by design (acks=0)".into(),
        (None, _, false) => "OK".into(),
    };
    view! {
        <dl class="facts">
            <dt>"API"</dt><dd><Term text=format!("{} v{}", k.operation, k.version) term=format!("op:{}", k.operation)/></dd>
            <dt>"client"</dt><dd class="mono">{k.client_id.clone().unwrap_or_else(|| "—".into())}</dd>
            <dt>"correlation id"</dt><dd>{k.correlation_id}</dd>
            <dt>"topics"</dt><dd data-testid="detail-topics">{topics}{more}</dd>
            {k.group.clone().map(|g| view! { <dt>"group"</dt><dd class="mono">{g}</dd> })}
            {k.acks.map(|a| view! { <dt>"acks"</dt><dd>{a}</dd> })}
            {k.records_bytes.map(|b| view! { <dt>"record batches"</dt><dd>{format!("{b} bytes (never read)")}</dd> })}
            <dt>"outcome"</dt><dd>{outcome}</dd>
            {(k.failed_partitions > 0).then(|| view! { <dt>"failed partitions"</dt><dd>{k.failed_partitions}</dd> })}
            {k.unread.clone().map(|u| view! { <dt>"body"</dt><dd>{format!("not read ({u})")}</dd> })}
        </dl>
    }
    .into_any()
}

/// A database request: the operation, the statement (literals already `?`), the session's
/// database and user, and what came back.
fn sql_facts(q: &podtap_shared::SqlExchange) -> AnyView {
    let statement = match (&q.statement, &q.prepared) {
        (Some(s), _) => s.clone(),
        (None, Some(name)) => format!("unknown ({})", if name.is_empty() { "unnamed" } else { name }),
        (None, None) => "—".into(),
    };
    let error = q.error.clone().map(|code| {
        let name = podtap_shared::sqlstate_name(&code);
        view! { <dt>"SQLSTATE"</dt><dd><Term text=format!("{code} {name}") term=format!("sqlstate:{code}")/></dd> }
    });
    let session = match (&q.user, &q.database) {
        (Some(u), Some(d)) => format!("{u} @ {d}"),
        _ => "not seen (joined mid-session)".into(),
    };
    view! {
        <dl class="facts">
            <dt>"operation"</dt><dd><Term text=q.operation.clone() term=format!("op:{}", q.operation.replace(' ', "_"))/></dd>
            <dt>"statement"</dt><dd class="mono" data-testid="detail-statement">{statement}</dd>
            <dt>"session"</dt><dd>{session}</dd>
            {q.application.clone().map(|a| view! { <dt>"application"</dt><dd>{a}</dd> })}
            <dt>"rows"</dt><dd>{q.rows.map_or("—".to_string(), |n| n.to_string())}</dd>
            {error}
            {(q.notices > 0).then(|| view! { <dt>"notices"</dt><dd>{q.notices}</dd> })}
            {(q.skipped > 0).then(|| view! { <dt>"skipped after it"</dt><dd>{q.skipped}</dd> })}
        </dl>
    }
    .into_any()
}

/// client → (Service address → DNAT) → pod, as chips.
#[component]
fn PathDrawing(record: Record) -> impl IntoView {
    let r = record;
    let service = r.via.service.as_deref().map(str::to_string);
    let hop = match (r.via.kind, &r.addressed) {
        (ViaKind::ClusterIp | ViaKind::NodePort | ViaKind::LoadBalancer, addressed) => {
            let address = addressed.as_ref().map(|a| format!("{}:{}", a.ip, a.port));
            let label =
                format!("{} {}", via_word(r.via.kind), address.unwrap_or_else(|| "(address not captured)".into()));
            let svc = service.clone().map(|s| view! { <Term text=s.clone() term=format!("svc:{s}")/> });
            Some(view! {
                <span class="arrow">"→"</span>
                <span class="chip service" data-testid="detail-service">
                    <Term text=label term=format!("via:{}", via_word(r.via.kind))/>
                    " "
                    {svc}
                </span>
                <span class="arrow">"→ DNAT →"</span>
            })
        }
        _ => None,
    };
    let direct = hop.is_none().then(|| view! { <span class="arrow">{format!("→ {} →", via_word(r.via.kind))}</span> });
    view! {
        <div class="path" data-testid="detail-path">
            <span class="chip client">{who(&r.src)}</span>
            {r.proxy.as_ref().map(|p| view! { <span class="arrow">"→"</span><span class="chip">{format!("proxy {}:{}", p.ip, p.port)}</span> })}
            {hop}
            {direct}
            <span class="chip pod" data-testid="detail-pod">{who(&r.dst)}</span>
        </div>
    }
}

fn clock_us(ts: u64) -> String {
    format!("{}.{:03}", clock(ts), (ts / 1000) % 1000)
}
