//! Bridge tests: stdio peers served over Streamable HTTP by `mcp-operator bridge`.
