//! The one integration-test binary (one binary keeps link time down on 2-core CI).
//! Each module is one area; `support` holds helpers shared between them.

mod apiserver;
mod bridge;
mod cli;
mod controller;
mod crds;
mod e2e;
mod eras;
mod gateway;
mod hardening;
mod manifests;
mod prober;
mod real_cluster;
mod support;
