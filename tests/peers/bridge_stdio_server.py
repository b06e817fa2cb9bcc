"""A stdio MCP server on the official Python SDK for the bridge's integration tests.

Usage: bridge_stdio_server.py

Tools: `echo` (returns its message), `pid` (the process id, to tell processes apart),
`slow` (sleeps `seconds`, then answers; `cancelled_calls` counts the cancelled ones) and `crash` (exits the process at once, without
answering), so tests can crash the server while other calls are in flight.
"""

import asyncio
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("bridge-test-server")


@server.tool(description="Echo a message back, unchanged.")
def echo(message: str) -> str:
    return message


@server.tool(description="The server's process id.")
def pid() -> int:
    return os.getpid()


CANCELLED_CALLS = 0


@server.tool(description="Sleep, then answer.")
async def slow(seconds: float) -> str:
    global CANCELLED_CALLS
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        CANCELLED_CALLS += 1
        raise
    return f"slept {seconds}"


@server.tool(description="How many `slow` calls were cancelled.")
def cancelled_calls() -> int:
    return CANCELLED_CALLS


@server.tool(description="Exit the process without answering.")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
