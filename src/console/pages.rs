//! The console's pages, rendered with `maud` (escaped HTML, SVG for the topology).

use std::sync::Arc;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::{Account, describe_data};
use crate::compile::ResourceType;
use crate::model::{Resource, ResourceKind};
use crate::store::Snapshot;
use crate::xds::{ProxySnapshot, StreamStatus, type_label};

use super::topology::{COLUMNS, Topology};

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 20px; }
header a { color: #fff; margin-right: 18px; text-decoration: none; }
main { padding: 10px 20px 40px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 16px; }
th, td { border: 1px solid #d5d9e0; padding: 4px 8px; text-align: left; vertical-align: top; }
pre { background: #fff; border: 1px solid #d5d9e0; padding: 8px; overflow-x: auto; }
.nack { color: #a31515; }
.ok { color: #17692e; }
.waiting { color: #8a5a00; }
section.proxy { background: #fff; border: 1px solid #d5d9e0; padding: 4px 14px; margin: 12px 0; }
svg text { font-size: 12px; font-family: system-ui, sans-serif; }
svg .edge-label { font-size: 11px; paint-order: stroke; stroke: #f6f7f9; stroke-width: 4px; fill: #3b4352; }
";

/// Re-reads the page every second and swaps in its `main` when it changed: the page
/// follows the mesh and its proxies without a reload.
const LIVE: &str = "
setInterval(async () => {
  try {
    const response = await fetch(location.href, { cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) return;
    const next = new DOMParser().parseFromString(await response.text(), 'text/html').querySelector('main');
    const current = document.querySelector('main');
    if (next && current && next.innerHTML !== current.innerHTML) current.innerHTML = next.innerHTML;
  } catch (e) {}
}, 1000);
";

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · meshd" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "meshd console" }
                    a href="/proxies" { "Proxies" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                script { (PreEscaped(LIVE)) }
            }
        }
    }
}

fn escaped(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn resource_href(arn: &str) -> String {
    format!("/resource?arn={}", escaped(arn))
}

fn mesh_href(mesh: &str) -> String {
    format!("/meshes/{}", escaped(mesh))
}

/// The start page: every mesh, and the proxies.
pub fn start(snapshot: &Snapshot, streams: usize) -> Markup {
    let meshes: Vec<&str> = snapshot.meshes().map(|m| m.key.name.as_str()).collect();
    page(
        "Meshes",
        html! {
            @if meshes.is_empty() {
                p { "No mesh yet." }
            } @else {
                ul.meshes {
                    @for mesh in &meshes {
                        li { a href=(mesh_href(mesh)) { (mesh) } }
                    }
                }
            }
            p { a href="/proxies" { "Proxies" } " (" (streams) " streams connected)" }
            p { "Store revision " (snapshot.revision()) "." }
        },
    )
}

const BOX_WIDTH: i64 = 180;
const BOX_HEIGHT: i64 = 46;
const COLUMN_STEP: i64 = 300;
const ROW_STEP: i64 = 64;
const TOP: i64 = 40;

/// The topology as SVG: a column per kind that the mesh has, a box per resource, arrows
/// with their labels as text.
fn graph(topology: &Topology) -> Markup {
    let mut rows = [0i64; COLUMNS.len()];
    for vertex in &topology.vertices {
        rows[vertex.column] += 1;
    }
    // Only the kinds the mesh has take a column.
    let mut left = [0i64; COLUMNS.len()];
    let mut shown = Vec::new();
    for (column, kind) in COLUMNS.iter().enumerate() {
        if rows[column] > 0 {
            left[column] = 10 + shown.len() as i64 * COLUMN_STEP;
            shown.push((left[column], kind));
        }
    }
    let mut row = [0i64; COLUMNS.len()];
    let mut at = Vec::with_capacity(topology.vertices.len());
    for vertex in &topology.vertices {
        at.push((left[vertex.column], TOP + row[vertex.column] * ROW_STEP));
        row[vertex.column] += 1;
    }
    let height = TOP + rows.iter().max().copied().unwrap_or(0).max(1) * ROW_STEP;
    let width = 10 + (shown.len().max(1) as i64 - 1) * COLUMN_STEP + BOX_WIDTH + 10;
    html! {
        svg.topology xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-label="Topology: gateways, gateway routes, virtual services, routers, routes and nodes" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
                    markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#5b6473" {}
                }
            }
            @for (x, kind) in &shown {
                text x=(x) y="20" font-weight="bold" { (kind.words()) }
            }
            @for edge in &topology.edges {
                @let (fx, fy) = at[edge.from];
                @let (tx, ty) = at[edge.to];
                @let (x1, y1, x2, y2) = (fx + BOX_WIDTH, fy + BOX_HEIGHT / 2, tx, ty + BOX_HEIGHT / 2);
                g.edge {
                    line x1=(x1) y1=(y1) x2=(x2) y2=(y2) stroke="#5b6473" marker-end="url(#arrow)" {}
                    @if !edge.label.is_empty() {
                        text.edge-label x=((x1 + x2) / 2) y=((y1 + y2) / 2 - 4) text-anchor="middle" { (edge.label) }
                    }
                }
            }
            @for (vertex, (x, y)) in topology.vertices.iter().zip(&at) {
                a href=(resource_href(&vertex.arn)) {
                    g.vertex {
                        rect x=(x) y=(y) width=(BOX_WIDTH) height=(BOX_HEIGHT) rx="6"
                            fill="#fff" stroke="#8a93a3" {}
                        text x=(x + 8) y=(y + 18) font-weight="bold" { (vertex.name) }
                        @if let Some(detail) = &vertex.detail {
                            text x=(x + 8) y=(y + 36) fill="#3b4352" { (detail) }
                        }
                    }
                }
            }
        }
    }
}

/// A mesh: its topology, its connections as a table, and every resource.
pub fn mesh(snapshot: &Snapshot, mesh: &str) -> Markup {
    let Some(resource) = snapshot.meshes().find(|m| m.key.name == mesh) else {
        return page(
            &format!("Mesh {mesh}"),
            html! { p { "There is no mesh " (mesh) "." } },
        );
    };
    let topology = Topology::of(snapshot, mesh);
    let mut members: Vec<&Resource> = snapshot
        .iter()
        .filter(|r| r.key.mesh == mesh)
        .map(|r| r.as_ref())
        .collect();
    members.sort_by_key(|r| {
        (
            ResourceKind::ALL.iter().position(|k| *k == r.key.kind),
            r.key.parent.clone(),
            r.key.name.clone(),
        )
    });
    let name = |i: usize| topology.vertices[i].name.as_str();
    page(
        &format!("Mesh {mesh}"),
        html! {
            p { a href=(resource_href(&resource.key.arn_resource())) { "The mesh's spec and metadata" } }
            h2 { "Topology" }
            (graph(&topology))
            h2 { "Connections" }
            table.connections {
                tr { th { "From" } th { "To" } th { "Match or weight" } }
                @for edge in &topology.edges {
                    tr { td { (name(edge.from)) } td { (name(edge.to)) } td { (edge.label) } }
                }
            }
            h2 { "Nodes' backends" }
            ul.backends {
                @for vertex in topology.vertices.iter().filter(|v| v.detail.is_some()) {
                    li { (vertex.name) ": " (vertex.detail.as_deref().unwrap_or_default()) }
                }
            }
            h2 { "Resources" }
            table.resources {
                tr { th { "Kind" } th { "Name" } th { "Version" } th { "Status" } }
                @for r in &members {
                    tr {
                        td { (r.key.kind.type_name()) }
                        td { a href=(resource_href(&r.key.arn_resource())) { (r.key.arn_resource()) } }
                        td { (r.metadata.version) }
                        td { (r.status.as_str()) }
                    }
                }
            }
        },
    )
}

/// One resource: its metadata and spec as the Describe operation returns them.
pub fn resource(account: &Account, arn: &str, resource: Option<&Resource>) -> Markup {
    let Some(resource) = resource else {
        return page(arn, html! { p { "There is no resource " (arn) "." } });
    };
    let data = describe_data(account, resource);
    let pretty = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    page(
        &format!("{} {}", resource.key.kind.type_name(), resource.key.name),
        html! {
            p { "In mesh " a href=(mesh_href(&resource.key.mesh)) { (resource.key.mesh) } "." }
            h2 { "Metadata" }
            table.metadata {
                @for (field, value) in data["metadata"].as_object().into_iter().flatten() {
                    tr { th { (field) } td { (value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())) } }
                }
                tr { th { "status" } td { (resource.status.as_str()) } }
            }
            h2 { "Spec" }
            pre.spec { (pretty(&data["spec"])) }
            @if !resource.tags.is_empty() {
                h2 { "Tags" }
                pre.tags { (serde_json::to_string_pretty(&resource.tags).unwrap_or_default()) }
            }
        },
    )
}

/// Every connected proxy: per type what it was sent and accepted, what it rejected (with
/// Envoy's message), and its diagnostics.
pub fn proxies(streams: &[(StreamStatus, Arc<ProxySnapshot>)]) -> Markup {
    page(
        "Proxies",
        html! {
            @if streams.is_empty() {
                p { "No proxy is connected." }
            }
            @for (stream, snapshot) in streams {
                section.proxy {
                    h2 { (stream.resource) }
                    p {
                        "Node id " code { (stream.node_id) } ", "
                        (match stream.stream { crate::xds::StreamKind::Sotw => "state of the world", crate::xds::StreamKind::Delta => "delta" })
                        " stream. "
                        @if let Some(key) = crate::model::ResourceKey::from_arn_resource(&stream.resource) {
                            a href=(resource_href(&key.arn_resource())) { "Its resource" }
                        }
                    }
                    table.types {
                        tr { th { "Type" } th { "State" } th { "Sent" } th { "Acknowledged" } th { "Responses" } th { "Resources" } }
                        @for (kind, state) in &stream.types {
                            tr {
                                td { (kind) }
                                @if state.nack.is_some() && state.acked_version != state.sent_version {
                                    td.nack { "rejected" }
                                } @else if state.acked_version == state.sent_version {
                                    td.ok { "in sync" }
                                } @else {
                                    td.waiting { "waiting for ACK" }
                                }
                                td { code { (state.sent_version) } }
                                td { code { (state.acked_version) } }
                                td { (state.responses_sent) }
                                td.names { (resource_names(snapshot, kind)) }
                            }
                        }
                    }
                    @for (kind, state) in &stream.types {
                        @if let Some(nack) = &state.nack {
                            div.nack {
                                p { "Envoy rejected " (kind) " version " code { (nack.version) } ":" }
                                pre.nack-message { (nack.message) }
                            }
                        }
                    }
                    @if stream.diagnostics.is_empty() {
                        p { "No diagnostics." }
                    } @else {
                        h3 { "Diagnostics" }
                        ul.diagnostics {
                            @for line in &stream.diagnostics { li { (line) } }
                        }
                    }
                }
            }
        },
    )
}

/// The names of the resources of type `label` in `snapshot` (what the stream serves).
fn resource_names(snapshot: &ProxySnapshot, label: &str) -> String {
    ResourceType::ALL
        .into_iter()
        .find(|kind| type_label(*kind) == label)
        .map(|kind| {
            let names: Vec<&str> = snapshot
                .of(kind)
                .resources
                .keys()
                .map(String::as_str)
                .collect();
            names.join(", ")
        })
        .unwrap_or_default()
}

/// The login form, with `error` if the last attempt failed.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · meshd" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "meshd console" }
                    @if let Some(error) = error { p.nack { (error) } }
                    form method="post" action="/login" {
                        label { "Token " input type="password" name="token" autofocus; }
                        " "
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}
