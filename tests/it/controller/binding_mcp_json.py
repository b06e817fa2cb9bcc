"""An agent using a binding Secret's `mcp.json` with the official MCP Python SDK client.

Reads MCP_JSON (the file the operator writes into the binding Secret), takes the entry of
SERVER, points its URL at a local gateway (only host and port change: scheme, path and
the headers are used as written), then: initialize, tools/list, and each call of
CALLS_JSON (`[{"tool": name, "args": {...}}]`) in one session. Prints JSON:
`{"tools": [names], "calls": [{"tool", "ok", "text"} | {"tool", "ok": false, "error":
{"code", "message", "data"}}]}`, or `{"initError": {...}}` when the session cannot start.

Usage: binding_mcp_json.py MCP_JSON SERVER HOST:PORT CALLS_JSON
"""

import asyncio
import json
import sys
from urllib.parse import urlsplit, urlunsplit

from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def error_json(e: MCPError) -> dict:
    return {"code": e.code, "message": e.message, "data": e.data}


async def main() -> None:
    path, server, address, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    with open(path) as f:
        entry = json.load(f)["mcpServers"][server]
    assert entry["type"] == "http", entry["type"]
    url = urlsplit(entry["url"])
    url = urlunsplit((url.scheme, address, url.path, url.query, url.fragment))
    out: dict = {"calls": []}
    async with create_mcp_http_client(headers=entry["headers"]) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                try:
                    await session.initialize()
                    tools = await session.list_tools()
                except MCPError as e:
                    print(json.dumps({"initError": error_json(e)}))
                    return
                out["tools"] = [t.name for t in tools.tools]
                for call in calls:
                    try:
                        result = await session.call_tool(call["tool"], call.get("args", {}))
                        text = "".join(c.text for c in result.content if c.type == "text")
                        out["calls"].append({"tool": call["tool"], "ok": not result.is_error, "text": text})
                    except MCPError as e:
                        out["calls"].append({"tool": call["tool"], "ok": False, "error": error_json(e)})
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
