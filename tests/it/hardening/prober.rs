//! Hardening tests: prober (filled in by issue 13's work).
