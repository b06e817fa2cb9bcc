// The TypeScript SDK v2 client (@modelcontextprotocol/client 2.4) as the era tests drive it.
//
//   node ts_era_client.cjs MODE URL   [TOOL ARGS_JSON]
//   node ts_era_client.cjs MODE stdio [TOOL ARGS_JSON] -- CMD ARGS...
//
// MODE is `versionNegotiation.mode`: `auto` (server/discover first, initialize as the
// fallback), `legacy` (initialize only) or a modern version, e.g. `2026-07-28` ({pin}).
// Prints one JSON line: {"protocolVersion": negotiated, "tools": [names], "result": the
// call's result (only with TOOL)}. A failure prints {"error": "..."} and exits 1.
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const peers = process.env.MCP_OPERATOR_PEERS || path.join(__dirname, '..', '..', '.peers');
const peerRequire = createRequire(path.join(peers, 'package.json'));
const { Client, StreamableHTTPClientTransport } = peerRequire('@modelcontextprotocol/client');
const { StdioClientTransport } = peerRequire('@modelcontextprotocol/client/stdio');

async function main() {
  let argv = process.argv.slice(2);
  let cmd = [];
  const cut = argv.indexOf('--');
  if (cut >= 0) {
    cmd = argv.slice(cut + 1);
    argv = argv.slice(0, cut);
  }
  const [mode, target, tool, args] = argv;
  const transport =
    target === 'stdio'
      ? new StdioClientTransport({ command: cmd[0], args: cmd.slice(1), stderr: 'ignore' })
      : new StreamableHTTPClientTransport(new URL(target));
  const negotiation = mode === 'auto' || mode === 'legacy' ? mode : { pin: mode };
  const client = new Client({ name: 'ts-era-client', version: '1.0.0' }, { versionNegotiation: { mode: negotiation } });
  await client.connect(transport);
  const out = { protocolVersion: client.getNegotiatedProtocolVersion() };
  const tools = await client.listTools();
  out.tools = tools.tools.map((t) => t.name);
  if (tool) out.result = await client.callTool({ name: tool, arguments: args ? JSON.parse(args) : {} });
  await client.close();
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(JSON.stringify({ error: `${e && e.name}: ${e && e.message}` }));
    process.exit(1);
  },
);
