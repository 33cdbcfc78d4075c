import type { ServerResponse } from 'node:http';
import {
  ErrorCode,
  errorResponse,
  isNotification,
  isResponse,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import type { RequestMultiplexer } from '../../pool/request-multiplexer';
import type { ChannelListener } from '../../session/client-channel';
import { STANDALONE_STREAM, type Session } from '../../session/session';
import { sendJson } from '../http/http-reply';
import { SSE_HEADERS } from '../http/sse-channel';
import {
  internalRequest,
  type BridgeEntry,
  type BridgeListener,
  type BridgeStandalone,
} from './sessionless-bridge';
import { refuse, type StreamableHttpDeps } from './streamable-http-deps';

/**
 * subscriptions/listen on the 2026-07-28 bridge: it acknowledges with the filter the upstream's
 * capabilities allow, takes the hidden session's standalone stream while anybody listens, and
 * fans the upstream's list_changed / resources/updated notifications out to matching listeners.
 */

export const META_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';

/** The subscriptions/listen filter fields and the upstream notification each one admits. */
const LIST_CHANGED: Record<string, { field: string; capability: string }> = {
  'notifications/tools/list_changed': { field: 'toolsListChanged', capability: 'tools' },
  'notifications/prompts/list_changed': { field: 'promptsListChanged', capability: 'prompts' },
  'notifications/resources/list_changed': { field: 'resourcesListChanged', capability: 'resources' },
};
const RESOURCE_UPDATED = 'notifications/resources/updated';

/**
 * The hidden session's standalone stream while subscriptions are open: what the upstream sends
 * outside any request (list_changed, resources/updated) goes to the listen streams.
 */
export class StandaloneChannel implements BridgeStandalone {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  readonly bufferedBytes = 0;

  constructor(
    private readonly owner: SessionlessSubscriptions,
    private readonly entry: BridgeEntry,
    private readonly session: Session,
  ) {}

  send(_seq: number, _stream: number, raw: string): boolean {
    this.session.ackAll();
    const m = JSON.parse(raw) as JsonRpcMessage;
    if (isNotification(m)) {
      this.owner.upstreamNotification(this.entry, m);
    } else if (!isResponse(m)) {
      // A server→client request outside any client request: nobody can answer it in 2026-07-28.
      const req = m as JsonRpcRequest;
      this.session.receive(
        req.method === Method.Ping
          ? { jsonrpc: '2.0', id: req.id, result: {} }
          : errorResponse(req.id, ErrorCode.MethodNotFound, `Method not found: ${req.method}`),
        undefined,
        STANDALONE_STREAM,
      );
    }
    return true;
  }

  end(): void {
    this.close(0, 'the upstream session ended');
  }

  close(_code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.standaloneClosed(this.entry, this, reason);
  }
}

/** One subscriptions/listen response stream. */
export class ListenStream implements BridgeListener {
  lastWrite = Date.now();
  ended = false;

  constructor(
    private readonly owner: SessionlessSubscriptions,
    readonly entry: BridgeEntry,
    readonly res: ServerResponse,
    /** The listen request's id: the subscription id every message on the stream carries. */
    readonly id: JsonRpcId,
    readonly filter: AcceptedFilter,
  ) {}

  wants(message: JsonRpcNotification): boolean {
    const kind = LIST_CHANGED[message.method];
    if (kind) return this.filter[kind.field as 'toolsListChanged'] === true;
    if (message.method === RESOURCE_UPDATED) {
      const uri = (message.params as { uri?: unknown } | undefined)?.uri;
      return typeof uri === 'string' && (this.filter.resourceSubscriptions ?? []).includes(uri);
    }
    return false;
  }

  /**
   * Fan-out cannot pause the shared upstream for one listener, so a listener that does not keep
   * up is cut off once it has more than the outbox bound waiting (the session's slow-reader bound).
   */
  write(message: unknown): void {
    if (this.ended) return;
    this.lastWrite = Date.now();
    this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    if (this.res.writableLength > this.owner.deps.config.session.outboxMaxBytes)
      this.owner.listenerOverflow(this);
  }

  keepAlive(): void {
    if (this.ended) return;
    this.lastWrite = Date.now();
    this.res.write(': keep-alive\n\n');
  }

  /** Abnormal end: an error answer to the listen request, then the end of the stream. */
  fail(code: number, message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.res.end(`event: message\ndata: ${JSON.stringify(errorResponse(this.id, code, message))}\n\n`);
  }

  /** Graceful end: the answer to the listen request, then the end of the stream. */
  finish(): void {
    if (this.ended) return;
    this.write({
      jsonrpc: '2.0',
      id: this.id,
      result: { resultType: 'complete', _meta: { [META_SUBSCRIPTION_ID]: this.id } },
    });
    this.ended = true;
    this.res.end();
  }
}

export interface AcceptedFilter {
  toolsListChanged?: true;
  promptsListChanged?: true;
  resourcesListChanged?: true;
  resourceSubscriptions?: string[];
}

/** What the subscriptions need of the bridge that runs them (SessionlessHandler implements it). */
export interface SubscriptionsHost {
  readonly deps: Pick<StreamableHttpDeps, 'config' | 'metrics' | 'keepAlive'>;
  /** Runs the gateway's own resources/subscribe and resources/unsubscribe on a hidden session. */
  readonly requests: RequestMultiplexer<unknown>;
  /** The bridge's error boundary. */
  internalError(res: ServerResponse, err: unknown): void;
}

/** The listen streams of every hidden session of one bridge, and the upstream subscriptions they hold. */
export class SessionlessSubscriptions {
  constructor(private readonly handler: SubscriptionsHost) {}

  get deps() {
    return this.handler.deps;
  }

  /**
   * subscriptions/listen on a bridged upstream: the acknowledgment (with the filter the
   * upstream's capabilities allow) first, then every matching notification the hidden session
   * receives, tagged with the subscription id, until the client closes the stream. Resource
   * subscriptions become upstream resources/subscribe calls, shared between listeners.
   */
  listen(entry: BridgeEntry, request: JsonRpcRequest, res: ServerResponse): void {
    const requested = (request.params as { notifications?: unknown }).notifications;
    if (requested === null || typeof requested !== 'object' || Array.isArray(requested)) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidParams,
        'invalid_params',
        'Invalid params: subscriptions/listen requires a "notifications" filter object',
        { id: request.id },
      );
      return;
    }
    const wanted = requested as Record<string, unknown>;
    const caps = entry.init!.capabilities ?? {};
    const capability = (name: string) => {
      const c = caps[name];
      return c !== null && typeof c === 'object' ? (c as Record<string, unknown>) : undefined;
    };
    const filter: AcceptedFilter = {};
    for (const { field, capability: cap } of Object.values(LIST_CHANGED)) {
      if (wanted[field] === true && capability(cap)?.listChanged === true) {
        filter[field as 'toolsListChanged'] = true;
      }
    }
    const uris = wanted.resourceSubscriptions;
    const subscribe =
      Array.isArray(uris) && capability('resources')?.subscribe === true
        ? [...new Set(uris.filter((u): u is string => typeof u === 'string'))]
        : [];
    Promise.all(
      subscribe.map((uri) => this.subscribeResource(entry, uri).then((ok) => (ok ? uri : undefined))),
    )
      .then((results) => {
        const granted = results.filter((u): u is string => u !== undefined);
        if (res.destroyed || res.writableEnded || entry.session!.closed) {
          for (const uri of granted) this.unsubscribeResource(entry, uri);
          if (!res.destroyed && !res.writableEnded) {
            sendJson(
              res,
              502,
              errorResponse(request.id, ErrorCode.UpstreamUnavailable, 'Upstream session closed'),
            );
          }
          return;
        }
        if (Array.isArray(uris) && capability('resources')?.subscribe === true) {
          filter.resourceSubscriptions = granted;
        }
        this.openListen(entry, request.id, filter, res);
      })
      .catch((err: unknown) => this.handler.internalError(res, err));
  }

  private openListen(entry: BridgeEntry, id: JsonRpcId, filter: AcceptedFilter, res: ServerResponse): void {
    const stream = new ListenStream(this, entry, res, id, filter);
    res.writeHead(200, SSE_HEADERS);
    entry.listeners.add(stream);
    this.deps.keepAlive?.add(stream);
    this.attachStandalone(entry);
    res.on('close', () => {
      stream.ended = true;
      this.dropListener(stream);
    });
    stream.write({
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { _meta: { [META_SUBSCRIPTION_ID]: id }, notifications: filter },
    });
  }

  /** A listen stream ended (closed by the client or cut off): release what it held. */
  private dropListener(stream: ListenStream): void {
    const entry = stream.entry;
    this.deps.keepAlive?.delete(stream);
    if (!entry.listeners.delete(stream)) return;
    for (const uri of stream.filter.resourceSubscriptions ?? []) this.unsubscribeResource(entry, uri);
    if (entry.listeners.size === 0) this.detachStandalone(entry);
  }

  /** A listener too slow for what it subscribed to: ended with an error it can read, counted. */
  listenerOverflow(stream: ListenStream): void {
    const waiting = stream.res.writableLength;
    const bound = this.deps.config.session.outboxMaxBytes;
    this.deps.metrics.error('listener_overflow');
    stream.fail(
      ErrorCode.InternalError,
      `Subscription ended: the client reads too slowly (${waiting} bytes waiting, bound ${bound}, OUTBOX_MAX_BYTES)`,
    );
    this.dropListener(stream);
  }

  private attachStandalone(entry: BridgeEntry): void {
    const session = entry.session!;
    if ((entry.standalone && !entry.standalone.closed) || session.closed) return;
    // What waited for a standalone stream predates every subscription: none of it is due, so
    // attaching replays nothing.
    session.ackAll();
    const channel = new StandaloneChannel(this, entry, session);
    entry.standalone = channel;
    session.attachStandalone(channel);
  }

  /** The last listener left: give the standalone stream back, so the idle session can expire. */
  private detachStandalone(entry: BridgeEntry): void {
    const channel = entry.standalone;
    entry.standalone = undefined;
    if (!channel || channel.closed) return;
    channel.closed = true;
    entry.session!.detachStandalone(channel);
  }

  /** The hidden session ended under its listeners: end each subscription gracefully. */
  standaloneClosed(entry: BridgeEntry, channel: StandaloneChannel, _reason: string): void {
    if (entry.standalone === channel) entry.standalone = undefined;
    for (const stream of entry.listeners) {
      this.deps.keepAlive?.delete(stream);
      stream.finish();
    }
    entry.listeners.clear();
    entry.resourceSubscriptions.clear();
  }

  /** A notification from the upstream that no single request owns. */
  upstreamNotification(entry: BridgeEntry, message: JsonRpcNotification): void {
    if (message.method === 'notifications/tools/list_changed') entry.toolsLoadedAt = 0;
    if (entry.listeners.size === 0) return;
    const params = (
      message.params !== null && typeof message.params === 'object' && !Array.isArray(message.params)
        ? message.params
        : {}
    ) as Record<string, unknown>;
    const meta = params._meta !== null && typeof params._meta === 'object' ? params._meta : {};
    for (const stream of entry.listeners) {
      if (!stream.wants(message)) continue;
      stream.write({
        jsonrpc: '2.0',
        method: message.method,
        params: { ...params, _meta: { ...meta, [META_SUBSCRIPTION_ID]: stream.id } },
      });
    }
  }

  /** Upstream resources/subscribe for `uri`, shared by every listener of the session. */
  private subscribeResource(entry: BridgeEntry, uri: string): Promise<boolean> {
    const count = entry.resourceSubscriptions.get(uri) ?? 0;
    entry.resourceSubscriptions.set(uri, count + 1);
    if (count > 0) return Promise.resolve(true);
    return internalRequest(this.handler.requests, entry.session!, 'resources/subscribe', { uri }, (m) =>
      this.upstreamNotification(entry, m),
    ).then(
      () => true,
      () => {
        this.unsubscribeResource(entry, uri, false);
        return false;
      },
    );
  }

  private unsubscribeResource(entry: BridgeEntry, uri: string, upstream = true): void {
    const count = entry.resourceSubscriptions.get(uri);
    if (count === undefined) return;
    if (count > 1) {
      entry.resourceSubscriptions.set(uri, count - 1);
      return;
    }
    entry.resourceSubscriptions.delete(uri);
    const session = entry.session!;
    if (upstream && !session.closed) {
      internalRequest(this.handler.requests, session, 'resources/unsubscribe', { uri }).catch(
        () => undefined,
      );
    }
  }
}
