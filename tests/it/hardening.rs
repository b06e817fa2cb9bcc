//! The adversarial suite (issue 13): each test attacks one rule from outside, the way a
//! hostile caller, child process, remote server or namespace user would, and shows the
//! rule holds. `docs/security.md` maps each threat to the test that covers it.

mod body;
mod bridge;
mod connections;
mod controller;
mod names_and_gc;
mod prober;
mod routing_headers;
mod sessions;
