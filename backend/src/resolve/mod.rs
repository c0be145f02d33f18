//! Stage 5, resolve: addresses → what they are in the cluster (pod, Service, node, external).
//! Cluster state comes from `kubectl get … -o json` Lists (`--cluster FILE`) or from the API
//! server through kube-rs reflectors (`watch`); both build the same `ClusterState`. Parsing uses the official k8s-openapi types;
//! nothing of them leaks past this module: callers get our own `Endpoint`.

pub mod access;
mod cluster_file;
mod dns_names;
mod history;
pub mod review;
mod state;
mod topic_names;
pub mod watch;

pub use cluster_file::{ClusterFileError, load_files, parse_list};
pub use dns_names::DnsNames;
pub use state::{Backend, ClusterState, ServiceRef};
pub use topic_names::TopicNames;
