"""Lists a server's tools and calls one, with the official MCP Python SDK client; prints JSON.

Usage: py_call_tool.py URL streamable-http|sse TOOL ARGS_JSON
       py_call_tool.py - stdio TOOL ARGS_JSON CMD ARGS...

Prints {"tools": [tool definitions], "result": <call result>} so the bridge's tests can
compare what a client sees through the bridge with what it sees talking to the server.
The client declares sampling, elicitation and roots (as the bridge does towards its
process), so servers that offer tools by client capability list the same set.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def transport(target: str, kind: str, rest: list[str]):
    if kind == "streamable-http":
        return streamable_http_client(target)
    if kind == "sse":
        return sse_client(target)
    if kind == "stdio":
        return stdio_client(StdioServerParameters(command=rest[0], args=rest[1:]))
    raise SystemExit(f"unknown transport {kind!r}")


async def refuse(*_args):
    raise RuntimeError("this test client does not answer server requests")


async def main() -> None:
    target, kind, tool, args, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    async with transport(target, kind, rest) as streams:
        async with ClientSession(
            streams[0],
            streams[1],
            sampling_callback=refuse,
            elicitation_callback=refuse,
            list_roots_callback=refuse,
        ) as session:
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool(tool, json.loads(args))
            print(json.dumps({
                "tools": [t.model_dump(mode="json", exclude_none=True) for t in tools.tools],
                "result": result.model_dump(mode="json", exclude_none=True),
            }))


if __name__ == "__main__":
    asyncio.run(main())
