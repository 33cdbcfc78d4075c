import { Logger } from '@nestjs/common';
import {
  Header,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcRequest,
  SseParser,
  type SseHandler,
} from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import { HeldQueue } from '../core/held-queue';
import { abortForTimeout, HttpCall, neverConnected, PauseGate, Sleeper, type ChunkSink } from './http-client';
import type { UpstreamOptions } from './upstream-options';
import type { MessageHeaders, UpstreamConnection, UpstreamSink } from './upstream-connection';
import { answerNotSent, answerUnavailable, InFlightRequests, takeIncoming } from './in-flight-requests';
import { backoffDelay, describeError, HandshakeStep, UpstreamHandshake } from './upstream-handshake';
import { parseUpstreamText } from './upstream-message';

type SseReplica = Extract<ReplicaConfig, { transport: 'sse' }>;

/** Messages held while the endpoint is unknown (connecting, reconnecting, replaying). */
const MAX_HELD = 10_000;

interface Held {
  message: JsonRpcMessage;
  raw: string | undefined;
  traceparent: string | undefined;
}

/**
 * A client of the legacy HTTP+SSE transport (2024-11-05): one long GET stream that first names the
 * POST endpoint (`endpoint` event) and then carries every server message; each client message is a
 * POST to that endpoint, answered 202. The stream cannot tell which request a message relates to, so
 * `related` is always undefined.
 */
export class SseUpstream implements UpstreamConnection, SseHandler, ChunkSink {
  readonly kind = 'sse' as const;
  sink: UpstreamSink | undefined = undefined;

  private readonly logger: Logger;
  private readonly handshake = new UpstreamHandshake();
  /** The POST endpoint of the current stream; undefined while (re)connecting. */
  private endpoint: string | undefined = undefined;
  /** The endpoint of the previous stream: the same one again means the session was resumed. */
  private previousEndpoint: string | undefined = undefined;
  private parser: SseParser;
  private streamAbort: HttpCall | undefined = undefined;
  private connectTimer: NodeJS.Timeout | undefined = undefined;
  private endpointWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined = undefined;
  /** Requests posted whose responses have not come back, so a lost session can answer them. */
  private readonly inFlight = new InFlightRequests();
  private readonly held = new HeldQueue<Held>(MAX_HELD);
  private reconnecting = false;
  private closed = false;
  private readonly active = new Set<HttpCall>();
  private readonly gate = new PauseGate();
  private readonly sleeper = new Sleeper();

  constructor(
    readonly replica: ReplicaConfig,
    private readonly options: UpstreamOptions,
  ) {
    this.logger = new Logger(`SseUpstream ${replica.id ?? (replica as SseReplica).url}`);
    this.parser = new SseParser(this);
  }

  /** Requests posted and not yet answered, cancelled or failed. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Opens the stream; resolves once the server has named its POST endpoint. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return this.connect();
  }

  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void {
    if (this.closed) {
      this.fail(message, 'Upstream unavailable: connection closed', false);
      return;
    }
    this.handshake.outgoing(message);
    if (this.endpoint === undefined || this.handshake.replaying) {
      if (!this.held.fits()) {
        this.fail(message, 'Upstream unavailable: too many messages waiting for the upstream stream', false);
        return;
      }
      this.held.push({ message, raw, traceparent: headers?.traceparent });
      return;
    }
    void this.post(this.endpoint, message, raw, headers?.traceparent);
  }

  pause(): void {
    this.gate.pause();
  }

  resume(): void {
    this.gate.resume();
  }

  healthy(): boolean {
    return !this.closed && this.endpoint !== undefined;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.endpoint = undefined;
    // Held requests were never sent: answer them rather than leave the caller waiting.
    for (const h of this.held.drain()) this.fail(h.message, 'Upstream unavailable: connection closed', false);
    this.inFlight.clear();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.endpointWaiter?.reject(new Error('connection closed'));
    this.endpointWaiter = undefined;
    this.sleeper.wakeAll();
    this.gate.resume();
    this.streamAbort?.abort(new Error('connection closed'));
    for (const call of this.active) call.abort(new Error('connection closed'));
    this.active.clear();
    return Promise.resolve();
  }

  // ------------------------------------------------------------------------------ the stream

  /**
   * One connection attempt: GET the stream and wait for its endpoint event (the whole wait is
   * bounded by connectTimeoutMs). Reading continues in the background until the stream drops.
   */
  private connect(): Promise<void> {
    const url = (this.replica as SseReplica).url;
    const headers: Record<string, string> = {
      ...(this.replica as SseReplica).headers,
      accept: 'text/event-stream',
    };
    // A resumable server (this gateway's own /sse, for one) continues the same session from here.
    if (this.parser.lastEventId) headers[Header.LastEventId] = this.parser.lastEventId;
    this.parser.reset();
    const call = new HttpCall();
    this.streamAbort = call;
    const waited = new Promise<void>((resolve, reject) => (this.endpointWaiter = { resolve, reject }));
    this.connectTimer = setTimeout(
      abortForTimeout,
      this.options.connectTimeoutMs,
      call,
      `no endpoint event within ${this.options.connectTimeoutMs} ms`,
    );
    void this.openAndRead(url, headers, call);
    return waited;
  }

  private async openAndRead(url: string, headers: Record<string, string>, call: HttpCall): Promise<void> {
    let why = 'stream ended';
    try {
      const { origin, pathname, search } = new URL(url);
      const res = await call.send(origin, pathname + search, 'GET', headers, undefined);
      const type = res.header('content-type') ?? '';
      if (res.status !== 200 || !type.includes('text/event-stream')) {
        res.discard();
        throw new Error(`HTTP ${res.status}${res.status === 200 ? ` (${type})` : ''}`);
      }
      // While the gate is paused nothing is read, so TCP pushes back on the upstream.
      await res.stream(this, this.gate);
    } catch (err) {
      why = describeError(err);
    }
    if (this.closed || call !== this.streamAbort) return;
    this.streamEnded(why);
  }

  /** A body chunk of the stream (ChunkSink). */
  chunk(bytes: Buffer): void {
    this.parser.pushBytes(bytes);
  }

  sseEvent(data: string, event: string): void {
    if (event === 'endpoint') {
      this.endpointEvent(data.trim());
    } else if (event === 'message') {
      this.deliverText(data);
    }
  }

  sseRetry(): void {
    // The reconnect schedule is ours (backoff bounded by retryMin/MaxMs); the hint is not needed.
  }

  private endpointEvent(data: string): void {
    const base = (this.replica as SseReplica).url;
    let endpoint: string;
    try {
      const resolved = new URL(data, base);
      // Our replica headers (API keys) must not be sent to another origin a server names.
      if (resolved.origin !== new URL(base).origin)
        throw new Error(`endpoint origin ${resolved.origin} differs`);
      endpoint = resolved.href;
    } catch (err) {
      this.logger.error(`Bad endpoint event "${data}": ${describeError(err)}`);
      this.streamAbort?.abort(new Error('bad endpoint event'));
      return;
    }
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const resumed = this.previousEndpoint === endpoint;
    this.endpoint = endpoint;
    this.previousEndpoint = endpoint;
    const waiter = this.endpointWaiter;
    this.endpointWaiter = undefined;
    if (this.reconnecting) {
      this.reconnecting = false;
      if (!resumed) {
        // A new upstream session: answers to what was asked on the old one will never come.
        this.failInFlight('Upstream unavailable: upstream stream was lost before the answer');
        if (this.handshake.recorded) {
          this.logger.warn('Upstream stream re-opened on a new session: replaying the initialize handshake');
          const init = this.handshake.startReplay();
          if (init) void this.post(endpoint, init, undefined, undefined);
        }
      }
    }
    waiter?.resolve();
    if (!this.handshake.replaying) this.flushHeld();
  }

  private streamEnded(why: string): void {
    const waiter = this.endpointWaiter;
    this.endpointWaiter = undefined;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.endpoint = undefined;
    this.handshake.abortReplay();
    if (waiter && !this.reconnecting) {
      // The first connection failed: start() rejects and the pool tries another replica.
      waiter.reject(new Error(`Upstream unreachable: ${why}`));
      return;
    }
    waiter?.reject(new Error(why));
    if (!this.reconnecting) {
      this.logger.warn(`Upstream SSE stream dropped (${why}); reconnecting`);
      this.reconnecting = true;
      void this.reconnectLoop();
    }
  }

  /** Re-opens the stream with jittered backoff; after maxRestarts failures the session is told. */
  private async reconnectLoop(): Promise<void> {
    for (let attempt = 0; attempt <= this.options.maxRestarts; attempt++) {
      await this.sleeper.sleep(backoffDelay(attempt, this.options.retryMinMs, this.options.retryMaxMs));
      if (this.closed) return;
      try {
        // reconnecting stays true across the attempt, so the endpoint event knows this is a re-open.
        this.reconnecting = true;
        await this.connect();
        return;
      } catch (err) {
        if (this.closed) return;
        this.logger.warn(`Reconnect ${attempt + 1} failed: ${describeError(err)}`);
        this.reconnecting = true;
      }
    }
    this.giveUp(
      new Error(`Upstream unavailable: SSE stream lost, ${this.options.maxRestarts} reconnects failed`),
    );
  }

  private giveUp(err: Error): void {
    this.reconnecting = false;
    for (const h of this.held.drain()) this.fail(h.message, err.message);
    this.failInFlight(err.message);
    this.closed = true;
    this.sink?.upstreamClosed(err);
  }

  // ------------------------------------------------------------------------------ messages

  private flushHeld(): void {
    const endpoint = this.endpoint;
    if (endpoint === undefined) return;
    for (const h of this.held.drain()) void this.post(endpoint, h.message, h.raw, h.traceparent);
  }

  /** POSTs one message to the endpoint; the answer comes on the stream. Never throws. */
  private async post(
    endpoint: string,
    message: JsonRpcMessage,
    raw: string | undefined,
    traceparent: string | undefined,
  ): Promise<void> {
    const request = isRequest(message);
    if (request) this.inFlight.add(message.id);
    else this.inFlight.forgetCancelled(message);
    const headers: Record<string, string> = {
      ...(this.replica as SseReplica).headers,
      'content-type': 'application/json',
    };
    // Only the trace context of a message's extra headers applies to the legacy transport.
    if (traceparent !== undefined) headers.traceparent = traceparent;
    const call = new HttpCall();
    this.active.add(call);
    // The legacy transport answers every POST with 202 at once; the real answer comes on the stream.
    const timer = setTimeout(
      abortForTimeout,
      this.options.connectTimeoutMs,
      call,
      `no response within ${this.options.connectTimeoutMs} ms`,
    );
    try {
      const { origin, pathname, search } = new URL(endpoint);
      const res = await call.send(origin, pathname + search, 'POST', headers, raw ?? JSON.stringify(message));
      res.discard();
      if (!res.ok) {
        if (res.status === 404 && endpoint === this.endpoint) {
          // The server forgot this session: dropping the stream makes the reader re-open it
          // (and replay the handshake on the new session).
          this.streamAbort?.abort(new Error('upstream session not found'));
        }
        this.fail(
          message,
          res.status >= 500
            ? `Upstream unreachable: HTTP ${res.status}`
            : `Upstream refused the message: HTTP ${res.status}`,
        );
      }
    } catch (err) {
      // Refused, DNS, TLS, connect timeout: the POST never went out.
      if (!this.closed)
        this.fail(message, `Upstream unreachable: ${describeError(err)}`, !neverConnected(err));
    } finally {
      clearTimeout(timer);
      this.active.delete(call);
    }
  }

  private deliverText(text: string): void {
    const parsed = parseUpstreamText(text);
    if (typeof parsed === 'string') {
      this.logger.warn(`Dropped an upstream message: ${parsed}`);
      return;
    }
    if (Array.isArray(parsed)) for (const m of parsed) this.deliver(m, undefined);
    else this.deliver(parsed, text);
  }

  private deliver(message: JsonRpcMessage, raw: string | undefined): void {
    const step = takeIncoming(message, raw, this.inFlight, this.handshake, this.sink);
    if (step === HandshakeStep.Replayed || step === HandshakeStep.ReplayFailed) {
      if (step === HandshakeStep.ReplayFailed)
        this.logger.warn('The upstream refused the replayed initialize');
      void this.finishReplay();
    }
  }

  private async finishReplay(): Promise<void> {
    const initialized = this.handshake.initialized;
    const endpoint = this.endpoint;
    // Sent (and accepted) before the held messages, as the client sent it before them.
    if (initialized && endpoint) await this.post(endpoint, initialized, undefined, undefined);
    this.flushHeld();
  }

  /** Answers a request that cannot be delivered; other messages are only logged. */
  /** `reached` false: the request was never sent (answerNotSent). */
  private fail(message: JsonRpcMessage, why: string, reached = true): void {
    if (!isRequest(message)) {
      this.logger.warn(`Could not deliver ${(message as JsonRpcRequest).method ?? 'a response'}: ${why}`);
      return;
    }
    this.inFlight.delete(message.id);
    if (this.handshake.isInternal(message.id)) {
      // The replayed initialize did not get through: drop the stream and try again from scratch.
      this.handshake.abortReplay();
      this.streamAbort?.abort(new Error(why));
      return;
    }
    if (reached) answerUnavailable(this.sink, message.id, why);
    else answerNotSent(this.sink, message.id, why);
  }

  private failInFlight(why: string): void {
    this.inFlight.failAll(this.sink, this.handshake, why);
  }
}
