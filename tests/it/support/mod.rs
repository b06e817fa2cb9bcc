//! Reusable helpers for the integration tests: third-party peers run as child processes on
//! 127.0.0.1 (killed on drop), free ports, and tiny local HTTP/TLS stub servers.
//!
//! A missing peer is a test failure that says to run `make peers`, never a silent skip.
#![allow(dead_code)] // each test module uses a different subset

pub mod peers;
pub mod stubs;

pub use peers::*;
pub use stubs::*;
