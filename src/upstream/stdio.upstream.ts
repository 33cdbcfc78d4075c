import { spawn, type ChildProcess } from 'node:child_process';
import { Logger } from '@nestjs/common';
import { isRequest, type JsonRpcMessage, type JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import { HeldQueue } from '../core/held-queue';
import type { UpstreamOptions } from './upstream-options';
import type { UpstreamConnection, UpstreamSink } from './upstream-connection';
import { answerNotSent, answerUnavailable, InFlightRequests, takeIncoming } from './in-flight-requests';
import { backoffDelay, describeError, HandshakeStep, UpstreamHandshake } from './upstream-handshake';
import { parseUpstreamText } from './upstream-message';

type StdioReplica = Extract<ReplicaConfig, { transport: 'stdio' }>;

/** Longest stdout line accepted; a longer one is dropped (and logged) rather than buffered on. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Longest stderr line kept for the log. */
const MAX_STDERR_LINE = 8 * 1024;
/** Bytes queued for a child's stdin while it is not draining; past it requests fail fast. */
const MAX_STDIN_QUEUE_BYTES = 16 * 1024 * 1024;
/** Messages held while the child restarts or the handshake is replayed. */
const MAX_HELD = 10_000;
/** Time between SIGTERM and SIGKILL when closing. */
const KILL_GRACE_MS = 2000;
/** A child that ran this long before dying starts the restart budget afresh. */
const STABLE_RUN_MS = 60_000;

/** Variables a server process needs to run at all; nothing else of the gateway's environment leaks. */
const INHERITED_ENV =
  process.platform === 'win32'
    ? ['APPDATA', 'HOMEDRIVE', 'HOMEPATH', 'LOCALAPPDATA', 'PATH', 'PROCESSOR_ARCHITECTURE', 'SYSTEMDRIVE', 'SYSTEMROOT', 'TEMP', 'USERNAME', 'USERPROFILE', 'PROGRAMFILES'] // prettier-ignore
    : ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ'];

export function safeEnvironment(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) {
    const value = process.env[key];
    // Exported shell functions ("() { …") are a known injection vector; never pass them on.
    if (value !== undefined && !value.startsWith('()')) env[key] = value;
  }
  return Object.assign(env, extra);
}

// ---------------------------------------------------------------------------------------------
// Every live child, so none outlives the gateway even when close() is never called.
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // 'exit' handlers must be synchronous: signals are all that can be sent from here.
    process.on('exit', killAllChildren);
  }
}

function killAllChildren(): void {
  for (const child of liveChildren) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
  liveChildren.clear();
}

/** Signals the child's whole process group (it leads one: detached), or the child alone as fallback. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Pids of the children this process runs (for tests and diagnostics). */
export function liveStdioPids(): number[] {
  const pids: number[] = [];
  for (const c of liveChildren) if (c.pid !== undefined) pids.push(c.pid);
  return pids;
}

interface Held {
  message: JsonRpcMessage;
  raw: string | undefined;
}

/**
 * An MCP server run as a child process speaking newline-delimited JSON-RPC on stdin/stdout. The
 * child leads its own process group so close() can end the whole tree; it is restarted with
 * jittered backoff when it dies, and the client's initialize handshake is replayed to the new one.
 */
export class StdioUpstream implements UpstreamConnection {
  readonly kind = 'stdio' as const;
  sink: UpstreamSink | undefined = undefined;

  private readonly logger: Logger;
  private readonly handshake = new UpstreamHandshake();
  private child: ChildProcess | undefined = undefined;
  private startedAt = 0;
  /** The child can take messages (spawned, and any handshake replay finished). */
  private ready = false;
  private closed = false;
  private gaveUp = false;
  private closing: Promise<void> | undefined = undefined;
  private exitWaiter: (() => void) | undefined = undefined;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined = undefined;
  private replayTimer: NodeJS.Timeout | undefined = undefined;
  private paused = false;

  /** Requests written to the current child and not yet answered (answered with errors if it dies). */
  private readonly inFlight = new InFlightRequests();
  private readonly held = new HeldQueue<Held>(MAX_HELD);

  // stdout line assembly: parts of the current line, kept as buffers until its newline arrives.
  private lineParts: Buffer[] = [];
  private lineBytes = 0;
  private skippingLine = false;
  private stderrPartial = '';

  // stdin backpressure: once write() returns false, lines wait here until 'drain'.
  private writeBlocked = false;
  private readonly writeQueue = new HeldQueue<string>(Number.POSITIVE_INFINITY, MAX_STDIN_QUEUE_BYTES);

  constructor(
    readonly replica: ReplicaConfig,
    private readonly options: UpstreamOptions,
  ) {
    const r = replica as StdioReplica;
    this.logger = new Logger(`StdioUpstream ${replica.id ?? r.command}`);
  }

  /** Requests written to the child and not yet answered, cancelled or failed. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The current child's pid (tests kill it to simulate a crash). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves once the process is spawned; rejects when it cannot be (e.g. command not found). */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.child) return Promise.resolve();
    return this.spawnChild().then(() => {
      this.ready = true;
      this.flushHeld();
    });
  }

  send(message: JsonRpcMessage, raw: string | undefined): void {
    if (this.closed) {
      this.fail(
        message,
        this.gaveUp
          ? 'Upstream unavailable: upstream process gave up'
          : 'Upstream unavailable: connection closed',
        false,
      );
      return;
    }
    this.handshake.outgoing(message);
    if (!this.ready) {
      if (!this.held.fits()) {
        this.fail(message, 'Upstream unavailable: too many messages waiting for the upstream process', false);
        return;
      }
      this.held.push({ message, raw });
      return;
    }
    this.writeMessage(message, raw);
  }

  pause(): void {
    this.paused = true;
    this.child?.stdout?.pause();
  }

  resume(): void {
    this.paused = false;
    this.child?.stdout?.resume();
  }

  healthy(): boolean {
    return !this.closed && this.ready && this.child !== undefined;
  }

  /** Ends the whole process tree: SIGTERM to the group, SIGKILL after a grace period; waits for the exit. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.ready = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.held.clear();
    this.inFlight.clear();
    const child = this.child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      this.closing = Promise.resolve();
      return this.closing;
    }
    const pid = child.pid;
    this.closing = new Promise<void>((resolve) => {
      const killTimer = setTimeout(killGroup, KILL_GRACE_MS, pid, 'SIGKILL');
      this.exitWaiter = () => {
        clearTimeout(killTimer);
        // The leader is gone; anything it left in its group (grandchildren) goes too.
        killGroup(pid, 'SIGKILL');
        resolve();
      };
    });
    child.stdin?.end();
    killGroup(pid, 'SIGTERM');
    return this.closing;
  }

  // ------------------------------------------------------------------------------ process

  private spawnChild(): Promise<void> {
    const r = this.replica as StdioReplica;
    let child: ChildProcess;
    try {
      child = spawn(r.command, r.args, {
        cwd: r.cwd,
        env: safeEnvironment(r.env),
        stdio: ['pipe', 'pipe', 'pipe'],
        // Leads its own process group, so the whole tree can be signalled at once.
        detached: true,
        windowsHide: true,
      });
    } catch (err) {
      return Promise.reject(
        new Error(`Upstream unavailable: cannot start ${r.command}: ${describeError(err)}`),
      );
    }
    this.child = child;
    this.startedAt = Date.now();
    this.resetStreams();
    child.stdout!.on('data', this.onStdout);
    child.stdout!.on('error', this.onPipeError);
    child.stderr!.on('data', this.onStderr);
    child.stderr!.on('error', this.onPipeError);
    child.stdin!.on('drain', this.onDrain);
    child.stdin!.on('error', this.onPipeError);
    if (this.paused) child.stdout!.pause();
    return new Promise<void>((resolve, reject) => {
      let spawned = false;
      child.once('spawn', () => {
        spawned = true;
        track(child);
        resolve();
      });
      child.on('error', (err) => {
        if (!spawned) {
          if (this.child === child) this.child = undefined;
          reject(new Error(`Upstream unavailable: cannot start ${r.command}: ${err.message}`));
        } else {
          this.logger.warn(`Child process error: ${err.message}`);
        }
      });
      // 'close', not 'exit': it comes after the child's stdout is drained, so answers it wrote
      // just before dying are delivered instead of being failed as lost.
      child.once('close', (code, signal) => this.onExit(child, code, signal));
    });
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    liveChildren.delete(child);
    if (child !== this.child) return;
    this.child = undefined;
    this.ready = false;
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.replayTimer = undefined;
    const waiter = this.exitWaiter;
    this.exitWaiter = undefined;
    waiter?.();
    if (this.closed) return;
    const why = `upstream process exited (${signal ?? `code ${code}`})`;
    this.logger.warn(why);
    this.handshake.abortReplay();
    this.resetStreams();
    // Requests the dead child took will never be answered by the next one.
    this.failInFlight(`Upstream unavailable: ${why}`);
    if (Date.now() - this.startedAt >= STABLE_RUN_MS) this.restarts = 0;
    if (this.restarts >= this.options.maxRestarts) {
      this.giveUp(new Error(`Upstream unavailable: ${why}; gave up after ${this.restarts} restarts`));
      return;
    }
    const delay = backoffDelay(this.restarts, this.options.retryMinMs, this.options.retryMaxMs);
    this.restarts++;
    this.restartTimer = setTimeout(this.restart, delay);
  }

  private readonly restart = (): void => {
    this.restartTimer = undefined;
    if (this.closed) return;
    this.spawnChild().then(this.afterRestart, this.restartFailed);
  };

  private readonly afterRestart = (): void => {
    if (this.closed || !this.child) return;
    this.logger.log(`Upstream process restarted (pid ${this.child.pid})`);
    const init = this.handshake.startReplay();
    if (!init) {
      this.ready = true;
      this.flushHeld();
      return;
    }
    // The new process knows nothing: it gets the client's handshake before anything else.
    this.writeLine(JSON.stringify(init));
    this.replayTimer = setTimeout(this.replayTimedOut, this.options.connectTimeoutMs);
  };

  private readonly restartFailed = (err: Error): void => {
    if (this.closed) return;
    this.logger.warn(err.message);
    if (this.restarts >= this.options.maxRestarts) {
      this.giveUp(new Error(`${err.message}; gave up after ${this.restarts} restarts`));
      return;
    }
    const delay = backoffDelay(this.restarts, this.options.retryMinMs, this.options.retryMaxMs);
    this.restarts++;
    this.restartTimer = setTimeout(this.restart, delay);
  };

  private readonly replayTimedOut = (): void => {
    this.replayTimer = undefined;
    this.logger.warn('Restarted upstream did not answer the replayed initialize; killing it');
    if (this.child?.pid !== undefined) killGroup(this.child.pid, 'SIGKILL'); // → onExit → next restart
  };

  private finishReplay(): void {
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.replayTimer = undefined;
    const initialized = this.handshake.initialized;
    if (initialized) this.writeLine(JSON.stringify(initialized));
    this.ready = true;
    this.flushHeld();
  }

  private giveUp(err: Error): void {
    this.logger.error(err.message);
    this.closed = true;
    this.gaveUp = true;
    // Held messages were never written to a child: they may go to another replica.
    for (const h of this.held.drain()) this.fail(h.message, err.message, false);
    this.sink?.upstreamClosed(err);
  }

  // ------------------------------------------------------------------------------ writing

  private flushHeld(): void {
    // If the child dies while flushing, the rest stays held (in order) for the next one.
    while (this.ready) {
      const h = this.held.shift();
      if (h === undefined) return;
      this.writeMessage(h.message, h.raw);
    }
  }

  private writeMessage(message: JsonRpcMessage, raw: string | undefined): void {
    let text = raw ?? JSON.stringify(message);
    // JSON allows raw newlines only as whitespace (never inside strings), so flattening them keeps
    // the message intact and the framing one line per message.
    if (raw !== undefined && (text.indexOf('\n') !== -1 || text.indexOf('\r') !== -1)) {
      text = text.replace(/[\r\n]/g, ' ');
    }
    const request = isRequest(message);
    if (request) this.inFlight.add(message.id);
    else this.inFlight.forgetCancelled(message);
    if (!this.writeLine(text)) {
      if (request) this.inFlight.delete(message.id);
      this.fail(message, 'Upstream unavailable: upstream process is not reading its input', false);
    }
  }

  /** Writes one line, honouring backpressure; false when the bounded queue is full. */
  private writeLine(text: string): boolean {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed) return false;
    const line = text + '\n';
    if (this.writeBlocked) {
      if (!this.writeQueue.fits(line.length)) return false;
      this.writeQueue.push(line, line.length);
      return true;
    }
    if (!stdin.write(line)) this.writeBlocked = true;
    return true;
  }

  private readonly onDrain = (): void => {
    this.writeBlocked = false;
    const stdin = this.child?.stdin;
    if (!stdin) return;
    while (!this.writeBlocked) {
      const line = this.writeQueue.shift();
      if (line === undefined) return;
      if (!stdin.write(line)) this.writeBlocked = true;
    }
  };

  private readonly onPipeError = (err: Error): void => {
    // EPIPE and friends: the child is dying; its 'close' drives what happens next.
    if (!this.closed) this.logger.debug(`Pipe error: ${err.message}`);
  };

  // ------------------------------------------------------------------------------ reading

  private readonly onStdout = (chunk: Buffer): void => {
    let start = 0;
    let nl = chunk.indexOf(10, start);
    while (nl !== -1) {
      if (this.skippingLine) {
        this.skippingLine = false;
      } else if (this.lineBytes > 0) {
        this.lineParts.push(chunk.subarray(start, nl));
        const line = Buffer.concat(this.lineParts, this.lineBytes + (nl - start)).toString('utf8');
        this.lineParts = [];
        this.lineBytes = 0;
        this.onLine(line);
      } else if (nl > start) {
        this.onLine(chunk.toString('utf8', start, nl));
      }
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length && !this.skippingLine) {
      this.lineBytes += chunk.length - start;
      if (this.lineBytes > MAX_LINE_BYTES) {
        this.logger.error(`Dropped an upstream line longer than ${MAX_LINE_BYTES} bytes`);
        this.lineParts = [];
        this.lineBytes = 0;
        this.skippingLine = true;
      } else {
        this.lineParts.push(start === 0 ? chunk : chunk.subarray(start));
      }
    }
  };

  private onLine(line: string): void {
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    if (line.trim().length === 0) return;
    const parsed = parseUpstreamText(line);
    if (typeof parsed === 'string') {
      // Servers sometimes print banners to stdout; it is not protocol, so it goes to the log.
      this.logger.warn(`Non-JSON-RPC output on stdout (${parsed}): ${line.slice(0, 200)}`);
      return;
    }
    if (Array.isArray(parsed)) for (const m of parsed) this.deliver(m, undefined);
    else this.deliver(parsed, line);
  }

  private deliver(message: JsonRpcMessage, raw: string | undefined): void {
    const step = takeIncoming(message, raw, this.inFlight, this.handshake, this.sink);
    if (step === HandshakeStep.Replayed || step === HandshakeStep.ReplayFailed) {
      if (step === HandshakeStep.ReplayFailed)
        this.logger.warn('The restarted upstream refused the replayed initialize');
      this.finishReplay();
    }
  }

  private readonly onStderr = (chunk: Buffer): void => {
    let text = this.stderrPartial + chunk.toString('utf8');
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      const line = text.slice(0, nl).trimEnd();
      if (line.length > 0) this.logger.log(`stderr: ${line.slice(0, MAX_STDERR_LINE)}`);
      text = text.slice(nl + 1);
      nl = text.indexOf('\n');
    }
    this.stderrPartial = text.length > MAX_STDERR_LINE ? text.slice(0, MAX_STDERR_LINE) : text;
  };

  private resetStreams(): void {
    this.lineParts = [];
    this.lineBytes = 0;
    this.skippingLine = false;
    this.stderrPartial = '';
    this.writeBlocked = false;
    this.writeQueue.clear();
  }

  // ------------------------------------------------------------------------------ errors

  /** `reached` false: the request was never written to a child (answerNotSent). */
  private fail(message: JsonRpcMessage, why: string, reached = true): void {
    if (!isRequest(message)) {
      this.logger.warn(`Could not deliver ${(message as JsonRpcRequest).method ?? 'a response'}: ${why}`);
      return;
    }
    if (this.handshake.isInternal(message.id)) return;
    if (reached) answerUnavailable(this.sink, message.id, why);
    else answerNotSent(this.sink, message.id, why);
  }

  private failInFlight(why: string): void {
    this.inFlight.failAll(this.sink, this.handshake, why);
  }
}
