'use strict';
/**
 * Preload (`node --require test/helpers/loopback-only.cjs …`) that forces every TCP server the
 * process starts onto 127.0.0.1, for test peers such as server-everything that listen on all
 * interfaces. Unix sockets and inherited handles are left alone.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a --require preload must be CommonJS
const net = require('node:net');

const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.fd === undefined && first.handle === undefined && !first._handle) {
      args[0] = { ...first, host: '127.0.0.1' };
    }
    return originalListen.apply(this, args);
  }
  if (
    typeof first === 'number' ||
    (typeof first === 'string' && /^\d+$/.test(first)) ||
    first === undefined
  ) {
    // listen(port?, host?, backlog?, cb?): keep the port, backlog and callback; replace the host.
    const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const backlog = args.find((a, i) => i > 0 && typeof a === 'number');
    const options = { port: first === undefined ? 0 : Number(first), host: '127.0.0.1' };
    if (backlog !== undefined) options.backlog = backlog;
    return callback ? originalListen.call(this, options, callback) : originalListen.call(this, options);
  }
  return originalListen.apply(this, args);
};
