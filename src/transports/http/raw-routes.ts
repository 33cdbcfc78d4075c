import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQueryString, type ParsedUrlQuery } from 'node:querystring';
import type { ErrorBoundary } from '../error-boundary';

/**
 * A transport's hot-path endpoint served straight from the Node HTTP server, before Fastify:
 * no Nest middleware, guard, pipe or interceptor and no Fastify routing, hooks or body parser run
 * per request — at a few thousand requests a second they cost more CPU than forwarding the message.
 */
export interface RawRoute {
  /**
   * Serves one request, or returns false to leave it to Fastify (a method the route does not
   * take, shutdown, …). `service` is the path segment after a prefix route's path (undefined on
   * the exact path); `query` is the raw query string without `?` ('' when there is none).
   */
  serve(req: IncomingMessage, res: ServerResponse, service: string | undefined, query: string): boolean;
  /** Answers whatever `serve` (or the body it reads) throws: the route's entry point. */
  readonly boundary: ErrorBoundary;
}

/**
 * The methods the transports' routes take (raw and Fastify alike): each route answers 405 with
 * Allow for the ones it does not serve; anything else is Fastify's 404, on every path the same.
 */
export const ROUTED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/** Where bootstrap's server keeps its table (see {@link rawRoutesOf}). */
const RAW_ROUTES = Symbol('raw routes');

type RawRouteServer = HttpServer & { [RAW_ROUTES]?: RawRoutes };

/** find-my-way's default: a longer parameter is not matched by `/:service` (Fastify answers 404). */
const MAX_SEGMENT_LENGTH = 100;

/**
 * The raw routes of one HTTP server, keyed by exact path: `/mcp` (`exact`) and, for routes that also
 * take one more segment, `/mcp/<service>` (`withService`). Anything unusual — an encoded, empty,
 * nested or over-long segment — is left to Fastify's router, which then answers as it always did.
 */
export class RawRoutes {
  private readonly exact = new Map<string, RawRoute>();
  /** Keyed by the path with its trailing slash (`/mcp/`). */
  private readonly prefixed = new Map<string, RawRoute>();

  /** Claims `path` (and `path/<service>` with `withService`) for `route`. */
  add(path: string, route: RawRoute, withService: boolean): void {
    if (this.exact.has(path)) throw new Error(`raw route ${path} is already taken`);
    this.exact.set(path, route);
    if (withService) this.prefixed.set(`${path}/`, route);
  }

  /** Offers a request to the route that claimed its path; false when none took it. */
  dispatch(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    const route = this.exact.get(path);
    if (route !== undefined) return serveWithin(route, req, res, undefined, query);
    if (this.prefixed.size === 0) return false;
    const slash = path.indexOf('/', 1);
    if (slash === -1 || slash === path.length - 1) return false;
    const prefixRoute = this.prefixed.get(path.slice(0, slash + 1));
    if (
      prefixRoute === undefined ||
      path.indexOf('/', slash + 1) !== -1 ||
      path.indexOf('%') !== -1 ||
      path.length - slash - 1 > MAX_SEGMENT_LENGTH
    ) {
      return false;
    }
    return serveWithin(prefixRoute, req, res, path.slice(slash + 1), query);
  }
}

/** Runs a route inside its error boundary: what it throws becomes an answer, never a crash. */
function serveWithin(
  route: RawRoute,
  req: IncomingMessage,
  res: ServerResponse,
  service: string | undefined,
  query: string,
): boolean {
  try {
    return route.serve(req, res, service, query);
  } catch (err) {
    route.boundary.http(res, err, sessionIdOf(req), req.headers);
    return true;
  }
}

/** The session a failed request named, for the boundary's log line (error path only). */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const id = req.headers['mcp-session-id'];
  return typeof id === 'string' ? id : undefined;
}

/** Gives `server` a raw route table; bootstrap's request listener dispatches through it. */
export function installRawRoutes(server: HttpServer): RawRoutes {
  const routes = new RawRoutes();
  (server as RawRouteServer)[RAW_ROUTES] = routes;
  return routes;
}

/**
 * The raw route table of the server Fastify listens on, or undefined when the server was not
 * built by bootstrap's factory (then the transports' Fastify routes serve everything).
 */
export function rawRoutesOf(server: HttpServer | undefined): RawRoutes | undefined {
  return server === undefined ? undefined : (server as RawRouteServer)[RAW_ROUTES];
}

/**
 * A raw query string as node:querystring parses it (what Fastify's routes saw: repeated keys give
 * arrays, no prototype). The usual `sessionId=…&client_id=…` — nothing to decode, no repeats — is
 * split by hand, which costs a fraction of querystring's general parser on every POST.
 */
export function parseQuery(query: string): ParsedUrlQuery {
  const out = Object.create(null) as ParsedUrlQuery;
  if (query.length === 0) return out;
  if (query.indexOf('%') !== -1 || query.indexOf('+') !== -1) return parseQueryString(query);
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    // Empty pairs, pairs without '=' and repeated keys: querystring's rules, not repeated here.
    if (end === start || eq === -1 || eq >= end || eq === start) return parseQueryString(query);
    const key = query.slice(start, eq);
    if (out[key] !== undefined) return parseQueryString(query);
    out[key] = query.slice(eq + 1, end);
    start = end + 1;
  }
  return out;
}

/** True when the request announces a body (Node's parser then delivers it as 'data' events). */
export function hasRequestBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
}

/** What receives a request body read by {@link readRawBody}. */
export interface RawBodyTarget {
  readonly maxBodyBytes: number;
  /** Answers what bodyRead / bodyTooLarge throw (they run in the request's event handlers). */
  readonly boundary: ErrorBoundary;
  /** The whole body is in. */
  bodyRead(
    req: IncomingMessage,
    res: ServerResponse,
    service: string | undefined,
    query: string,
    body: Buffer,
  ): void;
  /** The body went over maxBodyBytes; the connection is closed after the answer. */
  bodyTooLarge(req: IncomingMessage, res: ServerResponse, service: string | undefined, query: string): void;
}

/** Reads a request body into one Buffer, bounded by the target's maxBodyBytes. */
export function readRawBody(
  target: RawBodyTarget,
  req: IncomingMessage,
  res: ServerResponse,
  service: string | undefined,
  query: string,
): void {
  new RawBody(target, req, res, service, query);
}

class RawBody {
  private chunks: Buffer[] = [];
  private size = 0;
  private done = false;

  constructor(
    private readonly target: RawBodyTarget,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly service: string | undefined,
    private readonly query: string,
  ) {
    if (Number(req.headers['content-length']) > target.maxBodyBytes) {
      this.tooLarge();
      return;
    }
    req.on('data', (chunk: Buffer) => this.data(chunk));
    req.on('end', () => this.end());
  }

  private data(chunk: Buffer): void {
    if (this.done) return;
    this.size += chunk.length;
    if (this.size > this.target.maxBodyBytes) {
      this.tooLarge();
      return;
    }
    this.chunks.push(chunk);
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    const chunks = this.chunks;
    this.chunks = [];
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.size);
    try {
      this.target.bodyRead(this.req, this.res, this.service, this.query, body);
    } catch (err) {
      this.target.boundary.http(this.res, err, sessionIdOf(this.req), this.req.headers);
    }
  }

  private tooLarge(): void {
    this.done = true;
    this.chunks = [];
    // The rest is not worth reading: answer, and let Node close the connection afterwards.
    this.res.setHeader('connection', 'close');
    try {
      this.target.bodyTooLarge(this.req, this.res, this.service, this.query);
    } catch (err) {
      this.target.boundary.http(this.res, err, sessionIdOf(this.req), this.req.headers);
    }
  }
}
