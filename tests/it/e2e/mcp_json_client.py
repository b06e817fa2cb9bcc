"""An agent using an `mcp.json` (the standard client configuration the operator writes
into binding Secrets) with the official MCP Python SDK client, unmodified: the entry of
SERVER gives the URL and headers. Lists the tools, then makes each call of CALLS_JSON
(`[{"tool": name, "args": {...}}]`) in one session. Prints JSON:
`{"tools": [names], "calls": [{"tool", "ok", "text"} | {"tool", "ok": false, "error": {...}}]}`.

Usage: mcp_json_client.py MCP_JSON SERVER CALLS_JSON
"""

import asyncio
import json
import sys

from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main() -> None:
    path, server, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with open(path) as f:
        entry = json.load(f)["mcpServers"][server]
    out: dict = {"calls": []}
    async with create_mcp_http_client(headers=entry.get("headers", {})) as http:
        async with streamable_http_client(entry["url"], http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                out["tools"] = [t.name for t in (await session.list_tools()).tools]
                for call in calls:
                    try:
                        result = await session.call_tool(call["tool"], call.get("args", {}))
                        text = "".join(c.text for c in result.content if c.type == "text")
                        out["calls"].append({"tool": call["tool"], "ok": not result.is_error, "text": text})
                    except MCPError as e:
                        out["calls"].append({
                            "tool": call["tool"], "ok": False,
                            "error": {"code": e.code, "message": e.message, "data": e.data},
                        })
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
