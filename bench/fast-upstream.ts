/**
 * A deliberately fast MCP server for benchmarks: raw node:http, no SDK, no validation beyond
 * what routing needs. It speaks just enough MCP that a gateway can sit in front of it —
 * Streamable HTTP on /mcp (JSON responses only), the legacy HTTP+SSE transport on
 * /sse + /messages, and WebSocket on /ws (subprotocol `mcp`, one JSON-RPC message per text
 * frame, what a `transport: ws` replica speaks) — so that what a gateway benchmark measures
 * is the gateway.
 *
 * Run as a child (forked with IPC: sends {type:'ready', url}) or standalone
 * (`node dist/bench/fast-upstream.js [port]`, prints the URL).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ReadyMessage } from './ipc';
import { answerUsageRequests } from './usage';

const SUPPORTED_VERSIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'];
const LATEST_VERSION = '2025-11-25';
const MAX_BODY_BYTES = 1024 * 1024;

const TOOLS = [
  {
    name: 'echo',
    description: 'Returns its message.',
    inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
  },
  {
    name: 'large',
    description: 'Returns about `bytes` bytes of JSON text (records), the same text for the same size.',
    inputSchema: { type: 'object', properties: { bytes: { type: 'integer' } }, required: ['bytes'] },
  },
];

/** Cap on the large tool's output; a result is built once per size and reused. */
const MAX_LARGE_BYTES = 1024 * 1024;
const largeTexts = new Map<number, string>();

/**
 * JSON text of about `bytes` bytes that looks like a real tool result (an array of records
 * with names, e-mail addresses, numbers, dates, tags), from a fixed-seed generator: repeated
 * keys and vocabulary, varying values, so it compresses like typical JSON rather than like
 * random bytes or one repeated string.
 */
function largeText(bytes: number): string {
  const size = Math.max(2, Math.min(MAX_LARGE_BYTES, Math.floor(bytes)));
  const cached = largeTexts.get(size);
  if (cached !== undefined) return cached;
  let seed = 0x2f6b1d3;
  const rand = () => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const first = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Leslie', 'Margaret', 'Ken', 'Radia'];
  const last = [
    'Lovelace',
    'Hopper',
    'Turing',
    'Dijkstra',
    'Liskov',
    'Knuth',
    'Lamport',
    'Hamilton',
    'Thompson',
  ];
  const cities = ['Berlin', 'Lisbon', 'Osaka', 'Nairobi', 'Toronto', 'Santiago', 'Melbourne', 'Oslo'];
  const tags = ['alpha', 'beta', 'internal', 'billing', 'priority', 'archived', 'eu', 'us', 'trial'];
  const parts: string[] = [];
  let length = 2;
  for (let id = 1; length < size; id++) {
    const name = `${pick(first)} ${pick(last)}`;
    const record = JSON.stringify({
      id,
      name,
      email: `${name.toLowerCase().replace(' ', '.')}${Math.floor(rand() * 1000)}@example.com`,
      city: pick(cities),
      score: Math.round(rand() * 1e6) / 100,
      active: rand() < 0.7,
      tags: [pick(tags), pick(tags)],
      updatedAt: new Date(1.7e12 + Math.floor(rand() * 3e10)).toISOString(),
    });
    parts.push(record);
    length += record.length + 1;
  }
  const text = `[${parts.join(',')}]`;
  largeTexts.set(size, text);
  return text;
}

interface JsonRpcIn {
  jsonrpc?: string;
  id?: string | number | null;
  method?: string;
  params?: Record<string, any>;
}

/** Streamable HTTP sessions (just ids: the server keeps no per-session state). */
const streamableSessions = new Set<string>();
/** Legacy SSE sessions: the open stream each response is written to. */
const sseStreams = new Map<string, ServerResponse>();
/** Open WebSocket connections (each one MCP session; no other state). */
let wsConnections = 0;
/** tools/call answered, over any transport: shows how a gateway spread the load over replicas. */
let toolCalls = 0;
const WS_SUBPROTOCOL = 'mcp';

export interface FastUpstream {
  server: Server;
  /** Base URL, e.g. http://127.0.0.1:40000 (endpoints: /mcp, /sse, /ws). */
  url: string;
  close(): Promise<void>;
}

export async function startFastUpstream(port = 0, host = '127.0.0.1'): Promise<FastUpstream> {
  const server = createServer(handle);
  // The gateway keeps pooled keep-alive connections across benchmark levels; Node's 5 s default
  // would close them between levels and the next level would pay reconnects.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, ok);
  });
  // WebSocket on /ws: the upgrade picks subprotocol `mcp` when offered (and refuses others).
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_BODY_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
  });
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, wsConnection);
  });
  const address = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((ok) => {
        for (const res of sseStreams.values()) res.end();
        sseStreams.clear();
        for (const ws of wss.clients) ws.terminate();
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path === '/mcp') {
    if (req.method === 'POST') readBody(req, res, streamablePost);
    else if (req.method === 'DELETE') streamableDelete(req, res);
    // No server-initiated stream: the spec lets a server answer GET with 405.
    else plain(res, 405, 'Method Not Allowed', { allow: 'POST, DELETE' });
  } else if (path === '/sse' && req.method === 'GET') {
    openSseStream(req, res);
  } else if (path === '/messages' && req.method === 'POST') {
    const sessionId = new URLSearchParams(url.slice(q + 1)).get('sessionId') ?? '';
    const stream = sseStreams.get(sessionId);
    if (!stream) return plain(res, 404, 'Session not found');
    readBody(req, res, (_req, res2, message) => ssePost(res2, stream, message));
  } else {
    plain(res, 404, 'Not Found');
  }
}

function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  then: (req: IncomingMessage, res: ServerResponse, message: JsonRpcIn) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      plain(res, 413, 'Payload Too Large');
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (res.headersSent) return;
    let message: JsonRpcIn;
    try {
      message = JSON.parse((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8'));
    } catch {
      return json(res, 400, rpcError(null, -32700, 'Parse error'));
    }
    if (!message || typeof message !== 'object' || Array.isArray(message)) {
      return json(res, 400, rpcError(null, -32600, 'Invalid Request'));
    }
    then(req, res, message);
  });
}

function streamablePost(req: IncomingMessage, res: ServerResponse, message: JsonRpcIn): void {
  const sessionHeader = req.headers['mcp-session-id'];
  if (message.method === 'initialize') {
    const id = randomUUID();
    streamableSessions.add(id);
    res.setHeader('mcp-session-id', id);
    return json(res, 200, { jsonrpc: '2.0', id: message.id ?? null, result: initializeResult(message) });
  }
  if (typeof sessionHeader !== 'string') {
    return json(res, 400, rpcError(message.id ?? null, -32000, 'Bad Request: Mcp-Session-Id required'));
  }
  if (!streamableSessions.has(sessionHeader)) {
    return json(res, 404, rpcError(message.id ?? null, -32001, 'Session not found'));
  }
  // Notifications and client responses get 202 with no body.
  if (message.id === undefined || message.method === undefined) {
    res.writeHead(202, { 'content-length': '0' });
    res.end();
    return;
  }
  json(res, 200, answer(message));
}

function streamableDelete(req: IncomingMessage, res: ServerResponse): void {
  const id = req.headers['mcp-session-id'];
  const known = typeof id === 'string' && streamableSessions.delete(id);
  plain(res, known ? 200 : 404, known ? '' : 'Session not found');
}

function openSseStream(_req: IncomingMessage, res: ServerResponse): void {
  const id = randomUUID();
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.write(`event: endpoint\ndata: /messages?sessionId=${id}\n\n`);
  sseStreams.set(id, res);
  res.on('close', () => sseStreams.delete(id));
}

function ssePost(res: ServerResponse, stream: ServerResponse, message: JsonRpcIn): void {
  res.writeHead(202, { 'content-length': '0' });
  res.end();
  if (message.id === undefined || message.method === undefined) return;
  const reply =
    message.method === 'initialize'
      ? { jsonrpc: '2.0', id: message.id, result: initializeResult(message) }
      : answer(message);
  stream.write(`event: message\ndata: ${JSON.stringify(reply)}\n\n`);
}

/** One MCP session per WebSocket connection: a request in a text frame, its answer in another. */
function wsConnection(ws: WebSocket): void {
  wsConnections++;
  ws.once('close', () => wsConnections--);
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (isBinary) return ws.close(1003, 'text frames only');
    let message: JsonRpcIn;
    try {
      message = JSON.parse(data.toString());
    } catch {
      return ws.send(JSON.stringify(rpcError(null, -32700, 'Parse error')));
    }
    if (!message || typeof message !== 'object' || Array.isArray(message)) {
      return ws.send(JSON.stringify(rpcError(null, -32600, 'Invalid Request')));
    }
    // Notifications and responses to us need no answer.
    if (message.id === undefined || message.method === undefined) return;
    const reply =
      message.method === 'initialize'
        ? { jsonrpc: '2.0', id: message.id, result: initializeResult(message) }
        : answer(message);
    ws.send(JSON.stringify(reply));
  });
}

function initializeResult(message: JsonRpcIn) {
  const requested = message.params?.protocolVersion;
  return {
    protocolVersion: SUPPORTED_VERSIONS.includes(requested) ? requested : LATEST_VERSION,
    capabilities: { tools: {} },
    serverInfo: { name: 'bench-fast-upstream', version: '1.0.0' },
  };
}

/** The answer to a request other than initialize. */
function answer(message: JsonRpcIn): object {
  const id = message.id ?? null;
  switch (message.method) {
    case 'tools/call': {
      toolCalls++;
      if (message.params?.name === 'large') {
        const bytes = Number(message.params?.arguments?.bytes ?? 65536);
        return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: largeText(bytes) }] } };
      }
      const text = message.params?.arguments?.message;
      return {
        jsonrpc: '2.0',
        id,
        result: { content: [{ type: 'text', text: typeof text === 'string' ? text : '' }] },
      };
    }
    case 'tools/list':
      return { jsonrpc: '2.0', id, result: { tools: TOOLS } };
    case 'ping':
      return { jsonrpc: '2.0', id, result: {} };
    default:
      return rpcError(id, -32601, `Method not found: ${message.method}`);
  }
}

function rpcError(id: JsonRpcIn['id'], code: number, message: string) {
  return { jsonrpc: '2.0', id: id ?? null, error: { code, message } };
}

function json(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function plain(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

if (require.main === module) {
  startFastUpstream(Number(process.argv[2] ?? 0))
    .then((upstream) => {
      if (process.send) {
        let sockets = 0;
        upstream.server.on('connection', (socket: Socket) => {
          sockets++;
          socket.once('close', () => sockets--);
        });
        answerUsageRequests(() => ({
          streamableSessions: streamableSessions.size,
          sseStreams: sseStreams.size,
          openSockets: sockets,
          wsConnections,
          toolCalls,
        }));
        process.send({ type: 'ready', url: upstream.url } satisfies ReadyMessage);
      } else console.log(upstream.url);
      // Forked: the orchestrator going away (IPC closed) means this process should too.
      process.on('disconnect', () => process.exit(0));
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
