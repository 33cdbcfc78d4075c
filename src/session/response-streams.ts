import { EndReason, StreamEnd } from '../core/end-reason';
import type { ChannelListener, ClientChannel } from './client-channel';
import { NO_ENTRIES } from './empty-map';

/** Stream 0 is the standalone stream (Streamable HTTP GET, or the only stream of SSE/WebSocket). */
export const STANDALONE_STREAM = 0;

/** One response stream: a Streamable HTTP POST's, or the standalone GET stream. */
class ResponseStream {
  /** The channel writing it; undefined while none is attached (the client may resume it). */
  channel: ClientChannel | undefined;
  /** Requests whose responses belong to this stream and have not arrived yet. */
  pending = 0;
  /** No more requests will be added (the POST that opened it has been read completely). */
  sealed = false;

  constructor(channel: ClientChannel) {
    this.channel = channel;
  }
}

/**
 * Which channel carries each of a session's response streams: the POST streams of Streamable
 * HTTP (opened per POST, ended once sealed and every request on them is answered), the
 * standalone GET stream, and the primary connection (WebSocket, legacy SSE) that carries every
 * stream while attached. Stream numbers are allocated here.
 *
 * Plain bookkeeping the Session owns (one per session, every field set here): it never writes
 * messages — the session keeps the sequence, the outbox and the writing — it only says which
 * channel a stream's messages go to, and opens, replaces and ends channels. Channels report
 * drain and close to `listener` (the session), never to this object.
 */
export class ResponseStreams {
  /** WebSocket or legacy SSE connection: receives every message of every stream. */
  private primary: ClientChannel | undefined = undefined;
  // Starts as the shared empty sentinel and is allocated on first write: an idle session holds
  // a reference instead of an empty Map.
  private streams: Map<number, ResponseStream> = NO_ENTRIES;
  private nextStream = 1;
  /** Highest seq of the standalone stream handed to a channel, so a fresh GET gets what waited. */
  private sentThrough = 0;

  constructor(private readonly listener: ChannelListener) {}

  /** Highest seq of the standalone stream (or of any, through a primary) handed to a channel. */
  get standaloneSentThrough(): number {
    return this.sentThrough;
  }

  /** The channel that writes `stream`'s messages now: the primary when one is attached. */
  channelFor(stream: number): ClientChannel | undefined {
    if (this.primary) return this.primary;
    return this.streams.get(stream)?.channel;
  }

  /** Message `seq` of `stream` was handed to the channel that carries it. */
  handedOut(stream: number, seq: number): void {
    if (stream === STANDALONE_STREAM || this.primary) this.sentThrough = seq;
  }

  hasLiveChannel(): boolean {
    if (this.primary) return true;
    for (const s of this.streams.values()) if (s.channel) return true;
    return false;
  }

  // ---------------------------------------------------------------- requests on streams

  /** A request was registered on `stream`: the stream stays open until its answer is out. */
  requestAdded(stream: number): void {
    const state = this.streams.get(stream);
    if (state) state.pending++;
  }

  /** A request on `stream` was answered or forgotten: the stream ends once it has nothing more to say. */
  requestDone(stream: number): void {
    const state = this.streams.get(stream);
    if (state) {
      state.pending--;
      this.finishIfDone(stream, state);
    }
  }

  // ---------------------------------------------------------------- POST streams

  /** Opens a response stream for one POST (Streamable HTTP); returns its stream number. */
  open(channel: ClientChannel): number {
    const stream = this.nextStream++;
    channel.listener = this.listener;
    if (this.streams === NO_ENTRIES) this.streams = new Map();
    this.streams.set(stream, new ResponseStream(channel));
    return stream;
  }

  /** The POST that opened `stream` has been read: end the stream once its responses are out. */
  seal(stream: number): void {
    const state = this.streams.get(stream);
    if (!state) return;
    state.sealed = true;
    this.finishIfDone(stream, state);
  }

  private finishIfDone(stream: number, state: ResponseStream): void {
    if (stream === STANDALONE_STREAM || !state.sealed || state.pending > 0) return;
    this.streams.delete(stream);
    // Ended whatever carried its messages (a primary connection may have): a POST stream that
    // has nothing more to say must never be left open.
    if (state.channel && !state.channel.closed) {
      state.channel.listener = undefined;
      state.channel.end();
      // Its entries stay for the resume window (or until the bound evicts them): a client whose
      // connection broke after the last write re-sends the request and gets the retained answer
      // (dropping them loses nothing of the other streams: losses are tracked per stream).
    }
  }

  // ---------------------------------------------------------------- attaching channels

  /**
   * Makes `channel` the standalone stream (Streamable HTTP GET), letting go of a primary
   * connection; a previous standalone channel is replaced (most likely a half-open connection
   * the client gave up on). What waited for it is the session's to replay.
   */
  attachStandalone(channel: ClientChannel): void {
    this.detachPrimary();
    const state = this.streams.get(STANDALONE_STREAM);
    const previous = state?.channel;
    channel.listener = this.listener;
    if (this.streams === NO_ENTRIES) this.streams = new Map();
    this.streams.set(STANDALONE_STREAM, new ResponseStream(channel));
    if (previous && previous !== channel && !previous.closed) {
      previous.listener = undefined;
      previous.close(StreamEnd.Replaced, 'replaced by a newer GET stream');
    }
  }

  /**
   * Makes `channel` carry `stream` again (GET with Last-Event-ID), closing the channel it
   * replaces. Returns true when a POST stream has nothing more to come (sealed and answered, or
   * long finished): once the session has replayed what it missed, endResumed() ends it.
   */
  resume(channel: ClientChannel, stream: number): boolean {
    this.detachPrimary();
    channel.listener = this.listener;
    let state = this.streams.get(stream);
    // The stream's previous channel (most likely a connection the client gave up on) must not
    // stay open: nothing will be written to it again.
    const previous = state?.channel;
    if (previous && previous !== channel && !previous.closed) {
      previous.listener = undefined;
      previous.close(StreamEnd.Replaced, 'replaced by a resumed stream');
    }
    if (stream === STANDALONE_STREAM) {
      state = new ResponseStream(channel);
      if (this.streams === NO_ENTRIES) this.streams = new Map();
      this.streams.set(stream, state);
    } else if (state) {
      state.channel = channel;
    }
    return stream !== STANDALONE_STREAM && (!state || (state.sealed && state.pending === 0));
  }

  /** Ends a resumed POST stream that has nothing more to come (see resume()). */
  endResumed(stream: number, channel: ClientChannel): void {
    this.streams.delete(stream);
    channel.end();
  }

  /**
   * Makes `channel` the primary connection, carrying every stream (WebSocket, legacy SSE).
   * A previous primary is told the session moved; the Streamable HTTP channels are released.
   */
  attachPrimary(channel: ClientChannel): void {
    const previous = this.primary;
    this.primary = channel;
    channel.listener = this.listener;
    if (previous && previous !== channel && !previous.closed) {
      previous.listener = undefined;
      previous.close(EndReason.SessionMoved, 'session moved to another connection');
    }
    this.releaseStreamChannels();
  }

  /**
   * The primary connection carries every stream from now on: the Streamable HTTP channels
   * (POST response streams, the GET stream) will never be written to again, so they are
   * closed with a reason instead of hanging. Answers still due arrive on the primary; the
   * streams' bookkeeping stays so a later resume of one of them still works.
   */
  private releaseStreamChannels(): void {
    for (const [n, s] of this.streams) {
      const c = s.channel;
      if (!c) continue;
      s.channel = undefined;
      if (n === STANDALONE_STREAM) this.streams.delete(n);
      c.listener = undefined;
      if (!c.closed) c.close(StreamEnd.Replaced, 'session moved to another connection');
    }
  }

  /**
   * Lets go of the WebSocket/SSE connection that carried every stream: the client moved to
   * Streamable HTTP, so its streams must get their own messages again. The old connection
   * is told why (4002) in case it is still alive.
   */
  detachPrimary(): void {
    const previous = this.primary;
    if (!previous) return;
    this.primary = undefined;
    previous.listener = undefined;
    if (!previous.closed) previous.close(EndReason.SessionMoved, 'session moved to another connection');
  }

  /**
   * Lets go of `channel` as the standalone stream without closing it. Returns false when
   * `channel` is not the attached standalone stream.
   */
  detachStandalone(channel: ClientChannel): boolean {
    const state = this.streams.get(STANDALONE_STREAM);
    if (!state || state.channel !== channel) return false;
    this.streams.delete(STANDALONE_STREAM);
    channel.listener = undefined;
    return true;
  }

  /** `channel` closed: no stream is written to it any more (POST streams stay resumable). */
  channelClosed(channel: ClientChannel): void {
    if (this.primary === channel) this.primary = undefined;
    for (const [n, s] of this.streams) {
      if (s.channel !== channel) continue;
      s.channel = undefined;
      if (n === STANDALONE_STREAM) this.streams.delete(n);
    }
  }

  /** The session ended: forget every stream and close every channel with `code`. */
  closeAll(code: number, reason: string): void {
    const channels = new Set<ClientChannel>();
    if (this.primary) channels.add(this.primary);
    for (const s of this.streams.values()) if (s.channel) channels.add(s.channel);
    this.primary = undefined;
    this.streams = NO_ENTRIES;
    for (const c of channels) {
      c.listener = undefined;
      if (!c.closed) c.close(code, reason);
    }
  }
}
