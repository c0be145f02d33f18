//! Replica balance of one Service: the wire type of `GET /api/v1/services/{ns}/{name}/balance`
//! and of the summary's `services`, drawn by the browser's balance view. Computed on the server.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `GET /api/v1/services/{ns}/{name}/balance`, and each `services[]` entry of the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// `ns/name`.
    pub service: String,
    pub requests: u64,
    pub connections: u64,
    pub probe_requests: u64,
    /// 0 when requests are spread evenly over the endpoints, 1 when one endpoint got them all.
    pub skew: f64,
    /// Why the spread is uneven, in one sentence; `None` when it is not.
    pub cause: Option<String>,
    pub endpoints: Vec<EndpointBalance>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointBalance {
    /// `ns/name` of the pod.
    pub pod: Option<String>,
    pub ip: IpAddr,
    pub requests: u64,
    pub connections: u64,
    pub requests_per_connection: Option<f64>,
    pub share_of_requests: f64,
    pub share_of_connections: f64,
    /// kubelet probes of this pod: never part of `requests` or the shares.
    pub probe_requests: u64,
}
