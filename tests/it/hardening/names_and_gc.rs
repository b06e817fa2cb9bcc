//! Hardening tests: names_and_gc (filled in by issue 13's work).
