"""A small MCP server on the Python SDK 2.3, the era tests' "dual" and "modern-only" Python peer.

Usage: py_era_server.py dual|modern-only streamable-http PORT   (127.0.0.1:PORT, path /mcp)
       py_era_server.py dual|modern-only stdio

`dual` is MCPServer as it comes: it serves the 2026-07-28 era (server/discover, per-request
`_meta` envelope) and the 2025 initialize handshake on the same endpoint.

`modern-only`: the SDK 2.3 has no switch to refuse the legacy era (the TypeScript SDK's
`legacy: 'reject'` has no Python counterpart), so this adds the smallest wrapper that does:
a server middleware that answers every request of a legacy connection (the `initialize`
handshake first) with -32022 "Unsupported protocol version", `data.supported` naming the
modern versions, as the TypeScript SDK does; legacy notifications are dropped.

Tools: echo {text}, add {a, b}, region_echo {region, text} (`region` carries
`x-mcp-header: Region`, so modern clients mirror it in `Mcp-Param-Region`).
"""

import sys
from typing import Annotated, Any

from pydantic import Field

from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import MODERN_PROTOCOL_VERSIONS


async def refuse_legacy(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
    """Refuses every message of a legacy (handshake-era) connection."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return await call_next(ctx)
    if ctx.request_id is None:
        return None
    params = ctx.params or {}
    requested = params.get("protocolVersion", ctx.protocol_version) if ctx.method == "initialize" else ctx.protocol_version
    raise MCPError(
        code=UNSUPPORTED_PROTOCOL_VERSION,
        message=f"Unsupported protocol version: {requested}",
        data={"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": requested},
    )


def build(modern_only: bool) -> MCPServer:
    server = MCPServer(
        "py-modern-only" if modern_only else "py-dual",
        version="1.0.0",
        middleware=[refuse_legacy] if modern_only else None,
    )

    @server.tool(description="Echoes the text back")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Adds two integers")
    def add(a: int, b: int) -> str:
        return str(a + b)

    @server.tool(description="Echoes the text with its region (region is mirrored in Mcp-Param-Region)")
    def region_echo(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
        return f"{region}: {text}"

    return server


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("dual", "modern-only"):
        raise SystemExit("usage: py_era_server.py dual|modern-only streamable-http PORT | stdio")
    server = build(sys.argv[1] == "modern-only")
    if sys.argv[2] == "stdio":
        server.run("stdio")
    elif sys.argv[2] == "streamable-http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown transport {sys.argv[2]!r}")


if __name__ == "__main__":
    main()
