//! Reusable helpers for the integration tests: third-party peers run as child processes on
//! 127.0.0.1 (killed on drop), free ports, tiny local HTTP/TLS stub servers, and the real
//! control plane (etcd, kube-apiserver, kube-controller-manager) of the real-cluster tier.
//!
//! A missing peer is a test failure that says to run `make peers` (`make control-plane` for
//! the real control plane), never a silent skip.
#![allow(dead_code)] // each test module uses a different subset

pub mod control_plane;
pub mod era_peers;
pub mod eventually;
pub mod peers;
pub mod stubs;
pub mod test_cluster;

pub use control_plane::*;
pub use peers::*;
pub use stubs::*;
pub use test_cluster::TestCluster;
