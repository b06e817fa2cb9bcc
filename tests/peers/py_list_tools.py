"""Lists a server's tools with the official MCP Python SDK client and prints JSON.

Usage: py_list_tools.py URL streamable-http|sse
       py_list_tools.py - stdio CMD ARGS...

Prints {"protocolVersion": "...", "tools": ["name", ...]} (names in server order). The
prober's integration tests compare their own tool list with this one.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import PaginatedRequestParams


def transport(target: str, kind: str, rest: list[str]):
    if kind == "streamable-http":
        return streamable_http_client(target)
    if kind == "sse":
        return sse_client(target)
    if kind == "stdio":
        return stdio_client(StdioServerParameters(command=rest[0], args=rest[1:]))
    raise SystemExit(f"unknown transport {kind!r}")


async def main() -> None:
    target, kind, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    async with transport(target, kind, rest) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            names: list[str] = []
            cursor = None
            for _ in range(100):
                page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
                names.extend(tool.name for tool in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            print(json.dumps({"protocolVersion": str(init.protocol_version), "tools": names}))


if __name__ == "__main__":
    asyncio.run(main())
