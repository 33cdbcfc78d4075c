import { Logger } from '@nestjs/common';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import {
  ErrorCode,
  errorResponse,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
} from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import { HeldQueue } from '../core/held-queue';
import { createDemoServer } from './demo-server';
import { InFlightRequests } from './in-flight-requests';
import type { UpstreamOptions } from './upstream-options';
import type { UpstreamConnection, UpstreamSink } from './upstream-connection';

/** Server messages held while paused (the in-process server cannot be made to stop writing). */
const MAX_HELD = 10_000;

interface Held {
  message: JsonRpcMessage;
  related: JsonRpcId | undefined;
}

/**
 * An MCP server inside the gateway process (the demo), reached through the SDK's linked in-memory
 * transports. Messages cross as objects, so `raw` is undefined both ways and the session serialises
 * once. A fresh server instance serves each connection.
 */
export class EmbeddedUpstream implements UpstreamConnection {
  readonly kind = 'embedded' as const;
  sink: UpstreamSink | undefined = undefined;

  private readonly logger: Logger;
  private server: McpServer | undefined = undefined;
  private clientSide: InMemoryTransport | undefined = undefined;
  private closed = false;
  private paused = false;
  /** Client messages sent before start() finished. */
  private pending: JsonRpcMessage[] = [];
  private readonly held = new HeldQueue<Held>(MAX_HELD);
  /** Requests handed to the server and not yet answered or cancelled (failed if it closes). */
  private readonly inFlight = new InFlightRequests();
  /**
   * The relatedRequestId the server gave for the message being delivered right now. The in-memory
   * transport delivers synchronously inside send(), so it is exact, and it lets the session put
   * progress and sampling requests on the stream of the request they belong to.
   */
  private related: RequestId | undefined = undefined;

  constructor(
    readonly replica: ReplicaConfig,
    _options: UpstreamOptions,
  ) {
    this.logger = new Logger(`EmbeddedUpstream ${replica.id ?? 'demo'}`);
  }

  /** Requests handed to the server and not yet answered or cancelled. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('connection closed');
    if (this.clientSide) return;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const server = createDemoServer();
    const send = serverSide.send.bind(serverSide);
    serverSide.send = (message, options) => {
      this.related = options?.relatedRequestId;
      try {
        return send(message, options);
      } finally {
        this.related = undefined;
      }
    };
    clientSide.onmessage = this.onMessage;
    clientSide.onclose = this.onClose;
    await server.connect(serverSide);
    await clientSide.start();
    if (this.closed) {
      await server.close();
      return;
    }
    this.server = server;
    this.clientSide = clientSide;
    const pending = this.pending;
    this.pending = [];
    for (const m of pending) this.send(m, undefined);
  }

  send(message: JsonRpcMessage, _raw: string | undefined): void {
    if (this.closed) {
      this.fail(message, 'Upstream unavailable: connection closed');
      return;
    }
    const clientSide = this.clientSide;
    if (!clientSide) {
      this.pending.push(message);
      return;
    }
    // The SDK server stops the cancelled handler itself; the gateway only stops waiting.
    if (isRequest(message)) this.inFlight.add(message.id);
    else this.inFlight.forgetCancelled(message);
    clientSide.send(message as JSONRPCMessage).catch(this.onSendError);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    // If the session pauses again while these go out, the rest stays held (in order).
    while (!this.paused) {
      const h = this.held.shift();
      if (h === undefined) return;
      this.sink?.upstreamMessage(h.message, undefined, h.related);
    }
  }

  healthy(): boolean {
    return !this.closed && this.clientSide !== undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.held.clear();
    this.inFlight.clear();
    const server = this.server;
    this.server = undefined;
    this.clientSide = undefined;
    try {
      await server?.close();
    } catch (err) {
      this.logger.warn(`Closing the embedded server failed: ${(err as Error).message}`);
    }
  }

  private readonly onMessage = (message: JSONRPCMessage): void => {
    const related = this.related;
    if (isResponse(message as JsonRpcMessage)) {
      const id = (message as { id: JsonRpcId | null }).id;
      if (id !== null) this.inFlight.delete(id);
    }
    if (this.paused) {
      if (!this.held.fits()) {
        this.logger.error('Dropped an embedded server message: the client has not read for too long');
        return;
      }
      this.held.push({ message: message as JsonRpcMessage, related });
      return;
    }
    this.sink?.upstreamMessage(message as JsonRpcMessage, undefined, related);
  };

  private readonly onClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.inFlight.failAll(this.sink, undefined, 'Upstream unavailable: embedded server closed');
    this.sink?.upstreamClosed(new Error('embedded server closed'));
  };

  private readonly onSendError = (err: Error): void => {
    this.logger.warn(`Embedded send failed: ${err.message}`);
  };

  private fail(message: JsonRpcMessage, why: string): void {
    if (!isRequest(message)) return;
    this.sink?.upstreamMessage(
      errorResponse(message.id, ErrorCode.UpstreamUnavailable, why),
      undefined,
      message.id,
    );
  }
}
