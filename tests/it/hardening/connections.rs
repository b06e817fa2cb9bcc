//! Hardening tests: connections (filled in by issue 13's work).
