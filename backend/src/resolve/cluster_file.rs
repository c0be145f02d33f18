//! Reading cluster state from files: a `kubectl get pods,services,endpointslices,nodes -A -o json`
//! List (or a single object). Unknown kinds are skipped; an item that does not match its kind's
//! schema is an error naming the item, because a silently missing pod means wrong names later.

use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::ClusterState;

/// Problems with a cluster file.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// The file could not be read.
    #[error("cannot read cluster file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("cluster file {path} is not JSON ({source}); expected the output of `kubectl get … -A -o json`")]
    NotJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The file is neither JSON nor YAML objects.
    #[error(
        "cluster file {path} is neither JSON nor YAML ({message}); expected the output of `kubectl get … -A -o json` or `-o yaml`"
    )]
    NotYaml { path: String, message: String },
    /// An item does not match the Kubernetes schema of its kind.
    #[error("cluster file {path}: item {index} ({kind} {name}) is not a valid {kind}: {source}")]
    BadItem {
        path: String,
        index: usize,
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Loads and merges several cluster files.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<ClusterState, ClusterFileError> {
    let mut state = ClusterState::default();
    for path in paths {
        let path = path.as_ref();
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ClusterFileError::Io { path: display.clone(), source })?;
        parse_list(&display, &bytes, &mut state)?;
    }
    Ok(state)
}

/// Adds the objects of one List (or single object) to `state`.
pub fn parse_list(name: &str, bytes: &[u8], state: &mut ClusterState) -> Result<(), ClusterFileError> {
    // `-o json` starts with a brace; anything else is read as YAML (`-o yaml`, one or more
    // documents separated by `---`).
    let json = bytes.iter().find(|b| !b.is_ascii_whitespace()).is_none_or(|b| *b == b'{' || *b == b'[');
    let roots: Vec<Value> = if json {
        vec![serde_json::from_slice(bytes).map_err(|source| ClusterFileError::NotJson { path: name.into(), source })?]
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ClusterFileError::NotYaml { path: name.into(), message: "not text".into() })?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| ClusterFileError::NotYaml { path: name.into(), message: e.to_string() })?;
        if let Some(odd) = docs.iter().find(|d| !d.is_object()) {
            let message = format!(
                "a document is {}, not a List or an object",
                if odd.is_string() { "text" } else { "a scalar or a sequence" }
            );
            return Err(ClusterFileError::NotYaml { path: name.into(), message });
        }
        docs
    };
    let items: Vec<Value> = roots
        .into_iter()
        .flat_map(|root| match root.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![root],
        })
        .collect();
    for (index, item) in items.into_iter().enumerate() {
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
        let bad = |source| ClusterFileError::BadItem {
            path: name.into(),
            index,
            name: item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").into(),
            kind: kind.clone(),
            source,
        };
        match kind.as_str() {
            "Pod" => state.add_pod(&serde_json::from_value::<Pod>(item.clone()).map_err(bad)?),
            "Service" => state.add_service(&serde_json::from_value::<Service>(item.clone()).map_err(bad)?),
            "Node" => state.add_node(&serde_json::from_value::<Node>(item.clone()).map_err(bad)?),
            "EndpointSlice" => {
                state.add_endpoint_slice(&serde_json::from_value::<EndpointSlice>(item.clone()).map_err(bad)?)
            }
            "Namespace" => {
                let meta = item.get("metadata").cloned().unwrap_or_default();
                state.add_namespace(&serde_json::from_value::<ObjectMeta>(meta).map_err(bad)?)
            }
            "ReplicaSet" | "Job" => {
                let meta = item.get("metadata").cloned().unwrap_or_default();
                state.add_controller(&kind, &serde_json::from_value::<ObjectMeta>(meta).map_err(bad)?)
            }
            _ => state.skipped_objects += 1,
        }
    }
    state.resolve_workloads();
    Ok(())
}
