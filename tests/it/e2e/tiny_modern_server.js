// A dependency-free MCP server that speaks only the 2026-07-28 era (stateless, over
// Streamable HTTP), for the end-to-end scenarios; run as `node -e <this file's text>` so
// the same McpServer works with `mcp-operator dev` (host node) and on a cluster
// (node:22-alpine). Like the TypeScript SDK v2's `legacy: 'reject'`: `initialize` (or any
// request without the `_meta` protocol version) is answered -32022 naming 2026-07-28, and
// routing headers that disagree with the body are answered -32020. Tools: `echo`, `add`.
// Listens on $PORT (default 3001), path /mcp.
'use strict';
const http = require('http');
const VERSION = '2026-07-28';
const MAX_BODY = 1 << 20;
const tools = [
  {
    name: 'echo',
    description: 'Echoes the text back.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  },
  {
    name: 'add',
    description: 'Adds two numbers.',
    inputSchema: {
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
      required: ['a', 'b'],
    },
  },
];
const complete = (result) => ({ resultType: 'complete', ...result });
const text = (t) => complete({ content: [{ type: 'text', text: String(t) }] });

function answer(req, msg) {
  const meta = (msg.params && msg.params._meta) || {};
  const version = meta['io.modelcontextprotocol/protocolVersion'];
  if (msg.method === 'initialize' || version === undefined || version !== VERSION) {
    const requested = msg.method === 'initialize' ? (msg.params || {}).protocolVersion : version;
    return [400, { code: -32022, message: 'Unsupported protocol version', data: { supported: [VERSION], requested: String(requested) } }];
  }
  if (req.headers['mcp-protocol-version'] !== version || req.headers['mcp-method'] !== msg.method) {
    return [400, { code: -32020, message: 'Routing headers do not match the body' }];
  }
  if (msg.method === 'tools/call' && req.headers['mcp-name'] !== (msg.params || {}).name) {
    return [400, { code: -32020, message: 'Mcp-Name does not match the body' }];
  }
  switch (msg.method) {
    case 'server/discover':
      return [200, null, complete({
        supportedVersions: [VERSION],
        capabilities: { tools: {} },
        ttlMs: 0,
        cacheScope: 'public',
        _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'tiny-modern', version: '1.0.0' } },
      })];
    case 'tools/list':
      return [200, null, complete({ tools, ttlMs: 0, cacheScope: 'public' })];
    case 'tools/call': {
      const args = msg.params.arguments || {};
      if (msg.params.name === 'echo') return [200, null, text(args.text)];
      if (msg.params.name === 'add') return [200, null, text(Number(args.a) + Number(args.b))];
      return [200, { code: -32602, message: 'Unknown tool' }];
    }
    default:
      return [200, { code: -32601, message: 'Method not found' }];
  }
}

http
  .createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST' }).end();
      return;
    }
    let body = '';
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) req.destroy();
      else body += chunk;
    });
    req.on('end', () => {
      let msg;
      try {
        msg = JSON.parse(body);
      } catch {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }));
        return;
      }
      if (msg.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const [status, error, result] = answer(req, msg);
      const reply = error ? { jsonrpc: '2.0', id: msg.id, error } : { jsonrpc: '2.0', id: msg.id, result };
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(reply));
    });
  })
  .listen(Number(process.env.PORT || 3001), '127.0.0.1');
