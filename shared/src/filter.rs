//! The filter language, shared by the browser (live filtering, shareable in the URL) and the API
//! (`?filter=`). Terms separated by spaces must all hold; `-term` negates one.
//!
//! - `key:value` compares one field: `ns:` (either side's namespace), `pod:`, `svc:` (the Service
//!   the request went through or was addressed to), `path:` (prefix), `method:`, `status:` (`404`,
//!   or a class `5xx`), `via:` (`clusterIP`, `nodePort`, `direct`, …), `probe:` (`true`/`false`),
//!   `iface:`, `kind:` (`http`, `grpc`, `dns`, `tls`, `tcp`), `conn:` (a connection id),
//!   `edge:SOURCE>TARGET` (the requests one Service Map edge counts, its ends map ids at any
//!   level, or `*` for any: see `group`), `workload:` (either side's workload, `web` or
//!   `Deployment/web`); for database requests `op:` (the operation: `select`, `create_table`),
//!   `statement:` (contains), `table:` (a table the statement names), `sqlstate:` (a code, `42P01`,
//!   or its class, `42`). A value a key cannot take (`probe:maybe`) is an error, like an unknown key.
//! - any other word matches, case-insensitively, anywhere in either endpoint's name, namespace or
//!   address, the method or the path, a DNS name, a TLS server name, a SQL statement or operation.

use crate::{Endpoint, EndpointKind, Record};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    Namespace,
    Pod,
    Service,
    Path,
    Method,
    Status,
    Via,
    Probe,
    Interface,
    Kind,
    Conn,
    Edge,
    Workload,
    Operation,
    Statement,
    Table,
    Sqlstate,
    Topic,
    Text,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    field: Field,
    value: String,
    negated: bool,
}

/// A parsed filter; the empty filter matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
}

/// A term the filter language does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// Parses a filter; an unknown `key:` is an error naming it.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let (negated, word) = match word.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest),
                _ => (false, word),
            };
            let (field, value) = match word.split_once(':') {
                // An address with a port (10.0.0.1:80) or an IPv6 address is text, not a key.
                Some((key, value)) if key.chars().all(|c| c.is_ascii_alphabetic()) && !key.is_empty() => {
                    let field = match key.to_ascii_lowercase().as_str() {
                        "ns" | "namespace" => Field::Namespace,
                        "pod" => Field::Pod,
                        "svc" | "service" => Field::Service,
                        "path" => Field::Path,
                        "method" => Field::Method,
                        "status" => Field::Status,
                        "via" => Field::Via,
                        "probe" => Field::Probe,
                        "iface" | "interface" => Field::Interface,
                        "kind" => Field::Kind,
                        "conn" => Field::Conn,
                        "edge" => Field::Edge,
                        "workload" => Field::Workload,
                        "op" | "operation" => Field::Operation,
                        "statement" => Field::Statement,
                        "table" => Field::Table,
                        "sqlstate" => Field::Sqlstate,
                        "topic" => Field::Topic,
                        other => {
                            return Err(FilterError(format!(
                                "unknown filter key `{other}:` (known: ns, pod, svc, path, method, status, via, probe, iface, kind, conn, edge, workload, op, statement, table, sqlstate, topic)"
                            )));
                        }
                    };
                    check(&field, key, value)?;
                    (field, value)
                }
                _ => (Field::Text, word),
            };
            terms.push(Term { field, value: value.to_ascii_lowercase(), negated });
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether a record passes every term.
    pub fn matches(&self, r: &Record) -> bool {
        self.terms.iter().all(|t| t.holds(r) != t.negated)
    }
}

/// Values a key cannot take are errors, not terms that silently match nothing.
fn check(field: &Field, key: &str, value: &str) -> Result<(), FilterError> {
    let v = value.to_ascii_lowercase();
    let allowed: &[&str] = match field {
        Field::Probe => &["true", "false", "yes", "no", "1", "0"],
        Field::Via => &["clusterip", "nodeport", "loadbalancer", "socketlb", "direct", "unknown"],
        Field::Kind => &["http", "grpc", "dns", "tls", "tcp", "postgres", "mysql", "redis", "websocket", "kafka"],
        Field::Status => {
            let class = matches!(v.as_bytes(), [c, b'x', b'x'] if (b'1'..=b'5').contains(c));
            if class || v.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)) {
                return Ok(());
            }
            return Err(FilterError(format!(
                "`{key}:{value}` is not a status: use a code like 404 or a class like 5xx"
            )));
        }
        Field::Conn => {
            if v.parse::<u64>().is_ok() {
                return Ok(());
            }
            return Err(FilterError(format!("`{key}:{value}` is not a connection id (a number)")));
        }
        Field::Edge => {
            let end = |s: &str| s == "*" || s.contains(':');
            if value.split_once('>').is_some_and(|(a, b)| end(a) && end(b)) {
                return Ok(());
            }
            return Err(FilterError(format!(
                "`{key}:{value}` is not an edge: use SOURCE>TARGET with map ids, like edge:pod:ns/a>service:ns/b"
            )));
        }
        _ if value.is_empty() => return Err(FilterError(format!("`{key}:` needs a value"))),
        _ => return Ok(()),
    };
    if allowed.contains(&v.as_str()) {
        Ok(())
    } else {
        Err(FilterError(format!("`{key}:{value}` is not allowed: use one of {}", allowed.join(", "))))
    }
}

fn eq(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase().contains(needle)
}

fn endpoint_text(e: &Endpoint, needle: &str) -> bool {
    e.name.as_deref().is_some_and(|n| contains(n, needle))
        || e.namespace.as_deref().is_some_and(|n| contains(n, needle))
        || contains(&e.ip.to_string(), needle)
        || contains(&format!("{}:{}", e.ip, e.port), needle)
}

impl Term {
    fn holds(&self, r: &Record) -> bool {
        let v = self.value.as_str();
        let http = r.http();
        let sides = [&r.src, &r.dst];
        match self.field {
            Field::Namespace => sides.iter().any(|e| eq(e.namespace.as_deref(), v)),
            Field::Pod => {
                sides.iter().any(|e| e.kind == EndpointKind::Pod && e.name.as_deref().is_some_and(|n| contains(n, v)))
            }
            Field::Service => {
                let via = r.via.service.as_deref().is_some_and(|s| contains(s, v));
                via || sides
                    .iter()
                    .any(|e| e.kind == EndpointKind::Service && e.name.as_deref().is_some_and(|n| contains(n, v)))
            }
            Field::Path => r.http_path_status().is_some_and(|(p, _)| p.to_ascii_lowercase().starts_with(v)),
            Field::Method => {
                http.is_some_and(|h| h.method.eq_ignore_ascii_case(v))
                    || r.grpc().is_some_and(|g| g.grpc_method.eq_ignore_ascii_case(v))
            }
            Field::Status => r.http_path_status().and_then(|(_, s)| s).is_some_and(|s| status_matches(s, v)),
            Field::Via => {
                let kind = via_name(r);
                kind.eq_ignore_ascii_case(v)
            }
            Field::Probe => (v == "true" || v == "yes" || v == "1") == r.probe,
            Field::Interface => eq(r.interface.as_deref(), v),
            Field::Kind => match &r.detail {
                crate::Detail::Http(_) => v == "http",
                crate::Detail::Grpc(_) => v == "grpc",
                crate::Detail::Dns(_) => v == "dns",
                crate::Detail::Tls(_) => v == "tls",
                crate::Detail::Tcp(_) => v == "tcp",
                crate::Detail::Postgres(_) => v == "postgres",
                crate::Detail::Redis(_) => v == "redis",
                crate::Detail::Mysql(_) => v == "mysql",
                crate::Detail::Websocket(_) => v == "websocket",
                crate::Detail::Kafka(_) => v == "kafka",
            },
            Field::Conn => v.parse() == Ok(r.conn),
            Field::Workload => sides.iter().any(|e| {
                e.workload.as_deref().is_some_and(|w| {
                    w.eq_ignore_ascii_case(v) || w.split_once('/').is_some_and(|(_, name)| name.eq_ignore_ascii_case(v))
                })
            }),
            Field::Edge => v.split_once('>').is_some_and(|(a, b)| crate::group::on_edge(r, a, b)),
            // `op:create_table` for `CREATE TABLE`: a term has no spaces.
            Field::Operation => r.operation().is_some_and(|o| o.replace(' ', "_").eq_ignore_ascii_case(v)),
            Field::Statement => r.sql().and_then(|q| q.statement.as_deref()).is_some_and(|s| contains(s, v)),
            Field::Table => r.sql().and_then(|q| q.statement.as_deref()).is_some_and(|s| names_table(s, v)),
            Field::Sqlstate => {
                r.sql().and_then(|q| q.error.as_deref()).is_some_and(|e| e.to_ascii_lowercase().starts_with(v))
            }
            Field::Topic => r.kafka().is_some_and(|k| k.topics.iter().any(|t| t.name.eq_ignore_ascii_case(v))),
            Field::Text => {
                sides.iter().any(|e| endpoint_text(e, v))
                    || http.is_some_and(|h| contains(&h.path, v) || h.method.eq_ignore_ascii_case(v))
                    || r.grpc().is_some_and(|g| contains(&g.path, v))
                    || r.dns().is_some_and(|d| {
                        contains(&d.query, v) || d.rcode.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(v))
                    })
                    || matches!(&r.detail, crate::Detail::Tls(t) if t.sni.as_deref().is_some_and(|s| contains(s, v)))
                    || r.sql().is_some_and(|q| {
                        q.operation.eq_ignore_ascii_case(v) || q.statement.as_deref().is_some_and(|s| contains(s, v))
                    })
                    || r.redis().is_some_and(|x| {
                        x.command.eq_ignore_ascii_case(v) || x.key.as_deref().is_some_and(|k| contains(k, v))
                    })
                    || r.kafka().is_some_and(|k| {
                        k.operation.eq_ignore_ascii_case(v) || k.topics.iter().any(|t| contains(&t.name, v))
                    })
            }
        }
    }
}

/// A database or broker request's operation: the SQL command, the Redis command, the Kafka API.
/// Whether a statement names `table` (lowercase) as a whole identifier, alone or qualified
/// (`shop.orders`, `"orders"`): `table:order` does not match `orders`.
fn names_table(statement: &str, table: &str) -> bool {
    statement
        .to_ascii_lowercase()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'))
        .any(|word| word == table || word.rsplit('.').next() == Some(table))
}

/// `404` matches 404 only; `4xx` matches 400–499.
fn status_matches(status: u16, v: &str) -> bool {
    match v.as_bytes() {
        [c, b'x', b'x'] if c.is_ascii_digit() => status / 100 == u16::from(c - b'0'),
        _ => v.parse() == Ok(status),
    }
}

fn via_name(r: &Record) -> &'static str {
    use crate::ViaKind::*;
    match r.via.kind {
        ClusterIp => "clusterip",
        NodePort => "nodeport",
        LoadBalancer => "loadbalancer",
        SocketLb => "socketlb",
        Direct => "direct",
        Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Via, ViaKind};

    fn rec() -> Record {
        let mut r = Record::test();
        r.dst.kind = EndpointKind::Pod;
        r.dst.name = Some("web-7d4b9c8f6-x2k9p".into());
        r.dst.namespace = Some("default".into());
        r.dst.workload = Some("Deployment/web".into());
        r.via = Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) };
        r.interface = Some("veth1".into());
        r
    }

    fn m(f: &str) -> bool {
        Filter::parse(f).unwrap().matches(&rec())
    }

    #[test]
    fn fields_text_and_negation() {
        assert!(m(""));
        assert!(m(
            "ns:default pod:x2k9p svc:web via:clusterIP method:get status:200 status:2xx path:/ probe:false iface:veth1"
        ));
        assert!(!m("status:5xx"));
        assert!(!m("-ns:default"));
        assert!(m("-probe:true"));
        assert!(m("X2K9P"));
        assert!(m("10.0.0.1:40000"));
        assert!(!m("nginx"));
        assert!(m("kind:http") && !m("kind:dns"));
        assert!(
            m("workload:web") && m("workload:deployment/web") && !m("workload:api") && !m("workload:statefulset/web")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Filter::parse("colour:red").unwrap_err().to_string();
        assert!(err.starts_with("unknown filter key `colour:`"), "{err}");
    }

    #[test]
    fn values_a_key_cannot_take_are_errors() {
        for bad in ["probe:maybe", "via:teleport", "kind:smtp", "status:abc", "status:9xx", "conn:x", "ns:"] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
        let err = Filter::parse("probe:maybe").unwrap_err().to_string();
        assert!(err.contains("true, false"), "{err}");
        assert!(m("conn:1") && !m("conn:2"));
        assert!(Filter::parse("edge:pod:a>").is_err() && Filter::parse("edge:web").is_err());
    }

    #[test]
    fn an_edge_term_takes_map_ids_at_any_level() {
        let r = rec();
        let (src, dst) = (r.src.map_id(), r.dst.map_id());
        let svc = format!("service:{}", r.via.service.as_deref().unwrap());
        // Through default/web: on source → Service and Service → pod, not on source → pod.
        assert!(m(&format!("edge:{src}>{svc}")) && m(&format!("edge:{svc}>{dst}")));
        assert!(m("edge:namespace:default>namespace:default") && m(&format!("edge:*>{dst}")));
        assert!(!m(&format!("edge:{src}>{dst}")) && !m(&format!("edge:{dst}>{src}")));
    }
}

#[cfg(test)]
mod sql_tests {
    use super::*;
    use crate::{Detail, SqlExchange};

    fn query(statement: &str, operation: &str, error: Option<&str>) -> Record {
        let mut r = Record::test();
        r.detail = Detail::Postgres(SqlExchange {
            operation: operation.into(),
            statement: Some(statement.into()),
            error: error.map(str::to_string),
            ..Default::default()
        });
        r
    }

    #[test]
    fn database_requests_are_found_by_operation_statement_table_and_sqlstate() {
        let ok = query("SELECT * FROM shop.orders WHERE id = ?", "SELECT", None);
        let failed = query("INSERT INTO order_items VALUES (?)", "INSERT", Some("42P01"));
        let holds = |f: &str, r: &Record| Filter::parse(f).unwrap().matches(r);
        assert!(holds("kind:postgres op:select", &ok) && !holds("op:insert", &ok));
        let create = query("CREATE TABLE t (id int)", "CREATE TABLE", None);
        assert!(holds("op:create_table", &create) && holds("op:CREATE_TABLE", &create));
        assert!(holds("statement:where", &ok) && !holds("statement:delete", &ok));
        assert!(holds("table:orders", &ok) && !holds("table:order", &ok) && holds("table:shop.orders", &ok));
        assert!(holds("table:order_items", &failed) && !holds("table:orders", &failed));
        assert!(holds("sqlstate:42P01", &failed) && holds("sqlstate:42", &failed) && !holds("sqlstate:23", &failed));
        assert!(!holds("sqlstate:42", &ok), "no error, no SQLSTATE");
        assert!(holds("orders", &ok) && holds("insert", &failed), "free text finds statements");
        assert!(!holds("op:select", &Record::test()), "an HTTP request has no operation");
        assert!(Filter::parse("via:socketLB").is_ok());
    }

    #[test]
    fn kafka_requests_are_found_by_topic_api_and_kind() {
        let mut r = Record::test();
        r.detail = crate::Detail::Kafka(Box::new(crate::KafkaExchange {
            operation: "Produce".into(),
            topics: vec![crate::KafkaTopic { name: "orders".into(), partitions: vec![0, 1] }],
            ..Default::default()
        }));
        let holds = |f: &str| Filter::parse(f).unwrap().matches(&r);
        assert!(holds("kind:kafka topic:orders op:produce") && holds("topic:ORDERS"));
        assert!(!holds("topic:order") && !holds("op:fetch") && !holds("kind:redis"));
        assert!(holds("order") && holds("produce"), "free text finds topics and the API");
        assert!(!Filter::parse("topic:orders").unwrap().matches(&Record::test()));
    }
}
