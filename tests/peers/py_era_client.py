"""The Python SDK 2.3 client (`mcp.client.client.Client`) as the era tests drive it.

Usage: py_era_client.py MODE URL [TOOL ARGS_JSON]
       py_era_client.py MODE stdio [TOOL ARGS_JSON] -- CMD ARGS...

MODE is the client's `mode=`: `auto` (server/discover first, initialize as the fallback),
`legacy` (initialize only) or a modern version such as `2026-07-28` (pinned, no fallback).
Prints one JSON line: {"protocolVersion": negotiated, "tools": [names], "result": the
call's result (only with TOOL)}. A failure prints {"error": "..."} and exits 1.
"""

import asyncio
import json
import sys

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters


def parse(argv: list[str]) -> tuple[str, object, str | None, dict]:
    cmd: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, cmd = argv[:cut], argv[cut + 1 :]
    mode, target = argv[0], argv[1]
    tool = argv[2] if len(argv) > 2 else None
    args = json.loads(argv[3]) if len(argv) > 3 else {}
    if target == "stdio":
        if not cmd:
            raise SystemExit("stdio needs -- CMD ARGS...")
        server: object = StdioServerParameters(command=cmd[0], args=cmd[1:])
    else:
        server = target
    return mode, server, tool, args


async def main() -> None:
    mode, server, tool, args = parse(sys.argv[1:])
    out: dict = {}
    async with Client(server, mode=mode, read_timeout_seconds=30) as client:
        out["protocolVersion"] = client.protocol_version
        tools = await client.list_tools()
        out["tools"] = [t.name for t in tools.tools]
        if tool is not None:
            result = await client.call_tool(tool, args)
            out["result"] = result.model_dump(mode="json", exclude_none=True, by_alias=True)
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:  # one line for the test, whatever failed
        if isinstance(e, SystemExit) and e.code in (0, None):
            raise
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
