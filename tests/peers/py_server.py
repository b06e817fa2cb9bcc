"""A small MCP server on the official Python SDK, for the prober's integration tests.

Usage: py_server.py streamable-http|stateless-json|sse PORT

Binds 127.0.0.1:PORT. `stateless-json` is Streamable HTTP with `stateless_http=True,
json_response=True` (no session, plain JSON answers). Tools carry descriptions, schemas
and annotations so hashing sees real data.
"""

import os
import sys

import anyio

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("py-test-server", instructions="Test server for mcp-operator's prober.")


@server.tool(description="Add two integers.", annotations=ToolAnnotations(readOnlyHint=True))
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Echo a message back, unchanged.")
def echo(message: str) -> str:
    return message


@server.tool(description="Delete a note by id. Destructive.", annotations=ToolAnnotations(destructiveHint=True))
def delete_note(note_id: str) -> str:
    return f"deleted {note_id}"


@server.tool()
def no_description(flag: bool = False) -> bool:
    return flag


@server.resource("notes://readme", description="A static note.")
def readme() -> str:
    return "hello"


@server.prompt(description="Summarise a text.")
def summarise(text: str) -> str:
    return f"Summarise: {text}"


# Extra tools for the gateway's tests, only with MCP_TEST_GATEWAY_TOOLS=1 (the prober's
# tests count the tools above).
CANCELLED = {"count": 0}

if os.environ.get("MCP_TEST_GATEWAY_TOOLS") == "1":

    @server.tool(description="Return a string of `size` characters.")
    def big(size: int) -> str:
        return "x" * size

    @server.tool(description="Sleep for `seconds`; counts the calls cancelled meanwhile.")
    async def slow(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except BaseException:
            CANCELLED["count"] += 1
            raise
        return "done"

    @server.tool(description="How many slow calls were cancelled so far.")
    def cancelled_count() -> int:
        return CANCELLED["count"]


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "streamable-http":
        server.run("streamable-http", host="127.0.0.1", port=port)
    elif mode == "stateless-json":
        server.run("streamable-http", host="127.0.0.1", port=port, stateless_http=True, json_response=True)
    elif mode == "sse":
        server.run("sse", host="127.0.0.1", port=port)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
