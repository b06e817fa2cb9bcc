//! Hardening tests: sessions (filled in by issue 13's work).
