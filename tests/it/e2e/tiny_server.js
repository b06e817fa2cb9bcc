// A dependency-free stdio MCP server for the end-to-end scenarios, run as `node -e <this
// file's text>` so the same McpServer works with `mcp-operator dev` (host node) and on a
// cluster (node:22-alpine). Tools: `echo` (its description is $TOOL_DESCRIPTION, so a test
// can change a tool definition by changing the server's spec) and `add`.
'use strict';
const readline = require('readline');
const description = process.env.TOOL_DESCRIPTION || 'Echoes the text back.';
const tools = [
  {
    name: 'echo',
    description,
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
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');
const text = (t) => ({ content: [{ type: 'text', text: String(t) }] });
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return;
  }
  if (msg.id === undefined || msg.method === undefined) return;
  const reply = (result) => send({ jsonrpc: '2.0', id: msg.id, result });
  const fail = (code, message) => send({ jsonrpc: '2.0', id: msg.id, error: { code, message } });
  switch (msg.method) {
    case 'initialize':
      return reply({
        protocolVersion: (msg.params && msg.params.protocolVersion) || '2025-06-18',
        capabilities: { tools: {} },
        serverInfo: { name: 'tiny', version: '1.0.0' },
      });
    case 'ping':
      return reply({});
    case 'tools/list':
      return reply({ tools });
    case 'tools/call': {
      const args = (msg.params && msg.params.arguments) || {};
      if (msg.params.name === 'echo') return reply(text(args.text));
      if (msg.params.name === 'add') return reply(text(Number(args.a) + Number(args.b)));
      return fail(-32602, `unknown tool ${msg.params.name}`);
    }
    default:
      return fail(-32601, `method not found: ${msg.method}`);
  }
});
