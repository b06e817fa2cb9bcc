// A small MCP server on the TypeScript SDK v2 (@modelcontextprotocol/server 2.4), the
// era tests' "dual" and "modern-only" TypeScript peer.
//
//   node ts_era_server.cjs http   [--modern-only]   (PORT from env, 127.0.0.1, path /mcp)
//   node ts_era_server.cjs stdio  [--modern-only]
//
// Dual (the default) serves both eras: 2026-07-28 requests and the 2025 initialize
// handshake (the SDK's stateless legacy fallback over HTTP, a pinned 2025 connection over
// stdio). --modern-only (or MCP_LEGACY=reject) is the SDK's `legacy: 'reject'`: the
// handshake is answered with -32022 naming 2026-07-28.
//
// Tools: echo {text}, add {a, b}, and region_echo {region, text} whose `region` carries
// `x-mcp-header: Region`, so a modern client mirrors it in `Mcp-Param-Region` and the
// server checks the header against the body (-32020 when they differ).
'use strict';
const http = require('node:http');
const path = require('node:path');
const { createRequire } = require('node:module');

const peers = process.env.MCP_OPERATOR_PEERS || path.join(__dirname, '..', '..', '.peers');
const peerRequire = createRequire(path.join(peers, 'package.json'));
const { McpServer, createMcpHandler } = peerRequire('@modelcontextprotocol/server');
const { serveStdio } = peerRequire('@modelcontextprotocol/server/stdio');
const { z } = peerRequire('zod');

const transport = process.argv[2];
const modernOnly = process.argv.includes('--modern-only') || process.env.MCP_LEGACY === 'reject';
const MAX_BODY = 1 << 20;

const text = (t) => ({ content: [{ type: 'text', text: t }] });

function factory() {
  const server = new McpServer({ name: modernOnly ? 'ts-modern-only' : 'ts-dual', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes the text back', inputSchema: z.object({ text: z.string() }) },
    async ({ text: t }) => text(`echo: ${t}`),
  );
  server.registerTool(
    'add',
    { description: 'Adds two integers', inputSchema: z.object({ a: z.number().int(), b: z.number().int() }) },
    async ({ a, b }) => text(String(a + b)),
  );
  server.registerTool(
    'region_echo',
    {
      description: 'Echoes the text with its region (region is mirrored in Mcp-Param-Region)',
      inputSchema: z.object({ region: z.string().meta({ 'x-mcp-header': 'Region' }), text: z.string() }),
    },
    async ({ region, text: t }) => text(`${region}: ${t}`),
  );
  return server;
}

// node:http in front of the web-standard handler: bounded body in, streamed body out
// (SSE answers are flushed as the SDK writes them).
function serveHttp() {
  const handler = createMcpHandler(factory, { legacy: modernOnly ? 'reject' : 'stateless' });
  const port = Number(process.env.PORT || 3000);
  const server = http.createServer(async (req, res) => {
    try {
      if (new URL(req.url, 'http://x').pathname !== '/mcp') {
        res.writeHead(404).end();
        return;
      }
      const chunks = [];
      let size = 0;
      for await (const chunk of req) {
        size += chunk.length;
        if (size > MAX_BODY) {
          res.writeHead(413).end();
          return;
        }
        chunks.push(chunk);
      }
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
      }
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD' && chunks.length > 0;
      const request = new Request(`http://127.0.0.1:${port}${req.url}`, {
        method: req.method,
        headers,
        body: hasBody ? Buffer.concat(chunks) : undefined,
        signal: abort.signal,
      });
      const response = await handler.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) {
        for await (const chunk of response.body) res.write(chunk);
      }
      res.end();
    } catch (e) {
      if (!res.headersSent) res.writeHead(500);
      res.end();
      console.error('request failed:', e);
    }
  });
  server.listen(port, '127.0.0.1', () =>
    console.error(`ts era server (${modernOnly ? 'modern-only' : 'dual'}) on http://127.0.0.1:${port}/mcp`),
  );
}

if (transport === 'http') {
  serveHttp();
} else if (transport === 'stdio') {
  serveStdio(factory, { legacy: modernOnly ? 'reject' : 'serve' });
} else {
  console.error('usage: ts_era_server.cjs http|stdio [--modern-only]');
  process.exit(2);
}
