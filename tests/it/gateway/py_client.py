"""Lists tools and calls one with the official MCP Python SDK client, with an optional
bearer token, and prints JSON: {"tools": [names], "call": <CallToolResult as JSON>}.

Usage: py_client.py URL TOKEN|- TOOL ARGS_JSON
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main() -> None:
    url, token, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                tools = await session.list_tools()
                result = await session.call_tool(tool, args)
                print(json.dumps({
                    "tools": [t.name for t in tools.tools],
                    "call": result.model_dump(mode="json", exclude_none=True),
                }))


if __name__ == "__main__":
    asyncio.run(main())
