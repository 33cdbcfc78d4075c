// Preload for third-party servers started by tests: whatever host they ask for, they
// listen on 127.0.0.1 only (tests never open a port beyond loopback).
const net = require('node:net');
const original = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  if (typeof args[0] === 'object' && args[0] !== null) {
    args[0] = { ...args[0], host: '127.0.0.1' };
  } else if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const port = args[0];
    const callback = args.find((a) => typeof a === 'function');
    return original.call(this, { port: Number(port), host: '127.0.0.1' }, callback);
  }
  return original.apply(this, args);
};
