//! The Service Map as SVG: one box per pod/Service/node/external peer, one curve per edge with
//! its request count. Boxes and curves are keyed, so a new count redraws one element, not the map.
//! DOM hooks (DESIGN.md): `map-node` with `data-id`, `map-edge` with `data-source`, `data-target`,
//! `data-requests`.

use leptos::prelude::*;
use podtap_shared::{EndpointKind, ServiceMap};

use crate::layout::{EdgeCurve, NODE_H, NODE_W, NodeBox, label_text, layout};

fn kind_class(k: EndpointKind) -> &'static str {
    match k {
        EndpointKind::Pod => "node pod",
        EndpointKind::Service => "node service",
        EndpointKind::Node => "node k8snode",
        EndpointKind::External => "node external",
        EndpointKind::Unknown => "node unknown",
    }
}

fn kind_word(k: EndpointKind) -> &'static str {
    match k {
        EndpointKind::Pod => "pod",
        EndpointKind::Service => "service",
        EndpointKind::Node => "node",
        EndpointKind::External => "external",
        EndpointKind::Unknown => "unresolved",
    }
}

/// The map, laid out left to right along the traffic.
#[component]
pub fn MapView(
    /// The map to draw (already filtered).
    map: Signal<ServiceMap>,
    /// What to say when it is empty (no traffic yet, or nothing matches the filter).
    empty: Signal<String>,
) -> impl IntoView {
    let laid = Memo::new(move |_| map.with(layout));
    view! {
        <div class="map-scroll">
            <Show when=move || laid.with(|l| l.nodes.is_empty())>
                <p class="empty" data-testid="map-empty">{move || empty.get()}</p>
            </Show>
            <svg
                class="map"
                data-testid="map"
                width=move || laid.with(|l| l.width)
                height=move || laid.with(|l| l.height)
                viewBox=move || laid.with(|l| format!("0 0 {} {}", l.width, l.height))
            >
                <defs>
                    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"></path>
                    </marker>
                </defs>
                <For
                    each=move || laid.with(|l| l.edges.clone())
                    key=|e| (e.source.clone(), e.target.clone(), e.requests, e.errors, e.d.clone())
                    children=move |e| view! { <Edge edge=e/> }
                />
                <For
                    each=move || laid.with(|l| l.nodes.clone())
                    key=|n| (n.node.id.clone(), n.x as i64, n.y as i64)
                    children=move |n| view! { <Node node=n/> }
                />
            </svg>
        </div>
    }
}

/// One box.
#[component]
fn Node(
    /// The box and its map node.
    node: NodeBox,
) -> impl IntoView {
    let NodeBox { node, x, y } = node;
    // A click adds the node to the filter (`pod:name`, `svc:ns/name`, `ns:…`, an address).
    let term = match (node.kind, node.id.split_once(':')) {
        (EndpointKind::Pod, _) => format!("pod:{}", node.label),
        (EndpointKind::Service, Some((_, q))) => format!("svc:{q}"),
        (_, Some((_, rest))) => rest.to_string(),
        (_, None) => node.label.clone(),
    };
    let filter = use_context::<crate::components::term::FilterText>();
    let on_click = move |_| {
        if let Some(f) = filter {
            f.0.update(|t| *t = crate::components::term::add_term(t, &term));
        }
    };
    let sub = match (&node.workload, &node.namespace) {
        (Some(w), _) => w.clone(),
        (None, Some(ns)) => format!("{} · {ns}", kind_word(node.kind)),
        (None, None) => kind_word(node.kind).to_string(),
    };
    view! {
        <g class=kind_class(node.kind) data-testid="map-node" data-id=node.id.clone() transform=format!("translate({x},{y})") on:click=on_click>
            <title>{node.id.clone()}</title>
            <rect width=NODE_W height=NODE_H rx="7"></rect>
            <text x="10" y="19" class="label">{node.label.clone()}</text>
            <text x="10" y="36" class="sub">{sub}</text>
        </g>
    }
}

/// One curve with its count.
#[component]
fn Edge(
    /// The curve and its numbers.
    edge: EdgeCurve,
) -> impl IntoView {
    let title = format!(
        "{} → {}\n{} requests over {} connections, {} errors{}",
        edge.source,
        edge.target,
        edge.requests,
        edge.connections,
        edge.errors,
        edge.p95_ms.map(|p| format!(", p95 {p:.1} ms")).unwrap_or_default()
    );
    let class = if edge.errors > 0 { "edge has-errors" } else { "edge" };
    view! {
        <g class=class data-testid="map-edge" data-source=edge.source.clone() data-target=edge.target.clone() data-requests=edge.requests.to_string() data-connections=edge.connections.to_string()>
            <title>{title}</title>
            <path d=edge.d.clone() stroke-width=edge.stroke_width marker-end="url(#arrow)"></path>
            <text x=edge.label_x y=edge.label_y text-anchor="middle" class="count">
                {label_text(edge.requests, edge.connections)}
            </text>
        </g>
    }
}
