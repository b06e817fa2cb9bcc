// Preload (`node --require loopback.cjs …`) that makes every TCP server in the process
// listen on 127.0.0.1 only, whatever host the program asked for. Test peers such as
// server-everything bind all interfaces; tests must not expose them on the network.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && 'port' in first) {
    args[0] = { ...first, host: '127.0.0.1' };
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const rest = args.slice(1);
    if (typeof rest[0] === 'string' || rest[0] === undefined || rest[0] === null) rest.shift();
    args = [Number(first), '127.0.0.1', ...rest];
  }
  return listen.apply(this, args);
};
