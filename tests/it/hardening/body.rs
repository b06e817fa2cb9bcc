//! Hardening tests: body (filled in by issue 13's work).
