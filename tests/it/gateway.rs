//! Gateway tests: auth, policy, limits, audit, reload and proxying against real peers.
