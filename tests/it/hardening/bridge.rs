//! Hardening tests: bridge (filled in by issue 13's work).
