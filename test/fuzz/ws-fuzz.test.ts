/**
 * Property-based fuzzing of the WebSocket entry point of the real app: messages of every wrong
 * shape as text, binary and fragmented frames, oversize frames and control frames through the
 * `ws` library, and hand-built frames that `ws` will not produce (reserved bits and opcodes,
 * unmasked frames, lying lengths, fragmented or oversize control frames, invalid UTF-8 in text
 * and close frames) written on a raw socket after a hand-made upgrade. After each frame a probe
 * request must be answered, or the connection closed with a protocol close code (never 1011,
 * never dropped without a close frame); nothing may reach the process; an SDK client is served
 * afterwards and every session, socket and timer is gone.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as fc from 'fast-check';
import { WebSocket } from 'ws';
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.service';
import { SessionService } from '../../src/session/session.module';
import type { RunningGateway } from '../helpers/gateway';
import { body, invalidUtf8, message, toJsonText } from './arbitraries';
import {
  assertHealthyAfter,
  assertNoLeaks,
  CASE_TIMEOUT_MS,
  CrashRecorder,
  fuzzOptions,
  logCases,
  MAX_BODY_BYTES,
  MAX_FRAME_BYTES,
  resourceCounts,
  startFuzzGateway,
  warmBaseline,
  type ResourceCounts,
} from './fuzz-kit';

const LIB_CASES = 2000;
const RAW_CASES = 1000;

/** Close codes that say "your frames were wrong" (RFC 6455 §7.4.1) or are the gateway's own. */
function acceptableClose(code: number): boolean {
  return [1000, 1001, 1002, 1003, 1007, 1008, 1009].includes(code) || (code >= 4000 && code <= 4999);
}

const probe = (n: number) => JSON.stringify({ jsonrpc: '2.0', id: `probe-${n}`, method: 'ping' });
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } },
});

/** A `ws` connection that has initialised its session and can wait for an answer or the close. */
class LibConnection {
  readonly answered = new Set<string>();
  closeCode: number | undefined;
  private wake: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      try {
        const msg = JSON.parse(String(data)) as { id?: unknown };
        if (typeof msg.id === 'string') this.answered.add(msg.id);
      } catch {
        // not JSON: not ours to check here
      }
      this.wake?.();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.wake?.();
    });
    ws.on('error', () => undefined);
  }

  static async open(base: string): Promise<LibConnection> {
    const c = new LibConnection(new WebSocket(`${base.replace('http', 'ws')}/ws`, 'mcp'));
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
    });
    c.ws.send(INIT);
    assert.equal(await c.answerOrClose('init'), 'answered', 'initialize is answered');
    c.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    return c;
  }

  /** Resolves once `id` is answered or the connection closed; a hang rejects. */
  async answerOrClose(id: string): Promise<'answered' | 'closed'> {
    const deadline = Date.now() + CASE_TIMEOUT_MS;
    for (;;) {
      if (this.answered.has(id)) return 'answered';
      if (this.closeCode !== undefined) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`neither an answer to ${id} nor a close within ${CASE_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/** What the `ws` library can send: any payload, as text, binary, fragments, pings and pongs. */
const libFrame = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('text' as const), data: body(MAX_BODY_BYTES) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('binary' as const), data: body(MAX_BODY_BYTES) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fragments' as const),
      data: message.map((m) => Buffer.from(toJsonText(m))),
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 4 }),
      binary: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('oversize' as const),
      size: fc.integer({ min: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES * 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constantFrom('ping' as const, 'pong' as const),
      data: fc.uint8Array({ maxLength: 125 }).map((b) => Buffer.from(b)),
    }),
  },
);

// ------------------------------------------------------------------ raw frames

interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
  /** Length encoding: natural, forced 16/64-bit, or a declared length beyond the maximum. */
  length: 'natural' | '16' | '64' | 'huge';
}

function encodeFrame(f: RawFrame): Buffer {
  const head = [(f.fin ? 0x80 : 0) | ((f.rsv & 7) << 4) | (f.opcode & 0x0f)];
  const mask = f.masked ? 0x80 : 0;
  const n = f.payload.length;
  let declared = n;
  if (f.length === 'huge') declared = MAX_FRAME_BYTES * 4 + n;
  if (f.length === 'natural' && declared < 126) head.push(mask | declared);
  else if ((f.length === 'natural' || f.length === '16') && declared < 65536) {
    head.push(mask | 126, declared >> 8, declared & 0xff);
  } else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(f.length === 'huge' && n % 2 === 1 ? 2n ** 63n + BigInt(n) : BigInt(declared));
    head.push(mask | 127, ...big);
  }
  if (!f.masked) return Buffer.concat([Buffer.from(head), f.payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(f.payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

const closePayload = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(1000, 1001, 1002, 1005, 1006, 1011, 1015, 999, 2999, 3000, 4999, 5000),
      fc.nat(65535),
    ),
    fc.oneof(
      fc.string({ maxLength: 30 }).map((s) => Buffer.from(s)),
      invalidUtf8,
    ),
  )
  .map(([code, reason]) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    return Buffer.concat([b, reason]);
  });

const rawPayload = fc.oneof(
  { weight: 3, arbitrary: body(MAX_FRAME_BYTES / 2) },
  { weight: 1, arbitrary: invalidUtf8 },
  { weight: 1, arbitrary: closePayload },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 120, maxLength: 300 }).map((b) => Buffer.from(b)) },
);

const rawFrame: fc.Arbitrary<RawFrame> = fc.record({
  fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  rsv: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) },
  ),
  opcode: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(0x1, 0x2, 0x0, 0x8, 0x9, 0xa) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) },
  ),
  masked: fc.oneof({ weight: 8, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  payload: rawPayload,
  length: fc.oneof(
    { weight: 8, arbitrary: fc.constant('natural' as const) },
    { weight: 1, arbitrary: fc.constantFrom('16' as const, '64' as const, 'huge' as const) },
  ),
});

/** A hand-made upgrade on a raw socket; reads server frames (unmasked) as they come. */
class RawConnection {
  private buf = Buffer.alloc(0);
  private upgraded = false;
  readonly texts: string[] = [];
  closeCode: number | undefined;
  /** The payload of the server's close frame (code and reason), to tell an echo of ours apart. */
  closePayload: Buffer | undefined;
  ended = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<RawConnection> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true); // small frames back to back: no Nagle delay per case
    const c = new RawConnection(socket);
    socket.write(
      `GET /ws HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
        `sec-websocket-key: ${randomBytes(16).toString('base64')}\r\nsec-websocket-version: 13\r\n` +
        `sec-websocket-protocol: mcp\r\n\r\n`,
    );
    await c.until(() => c.upgraded || c.ended, 'the 101');
    assert.ok(c.upgraded, 'upgrade accepted');
    return c;
  }

  private parse(): void {
    if (!this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.upgraded = /^HTTP\/1\.1 101/.test(this.buf.subarray(0, end).toString('latin1'));
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 0x1) this.texts.push(payload.toString('utf8'));
      if (opcode === 0x8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closePayload = Buffer.from(payload);
      }
    }
  }

  async until(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + CASE_TIMEOUT_MS;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${CASE_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  send(frame: RawFrame): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(frame));
  }
}

const text = (s: string): RawFrame => ({
  fin: true,
  rsv: 0,
  opcode: 1,
  masked: true,
  payload: Buffer.from(s),
  length: 'natural',
});

describe('fuzz: WebSocket', () => {
  let gw: RunningGateway;
  let port: number;
  const crashes = new CrashRecorder();
  let beforeGateway: ResourceCounts;

  before(async () => {
    crashes.install();
    beforeGateway = resourceCounts();
    gw = await startFuzzGateway();
    port = Number(new URL(gw.url).port);
  });

  after(() => crashes.uninstall());

  test('frames through ws: text, binary, fragmented, oversize, ping/pong; any payload', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'ws');
    let conn = await LibConnection.open(gw.url);
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(libFrame, async (frame) => {
          cases++;
          if (conn.closeCode !== undefined) conn = await LibConnection.open(gw.url);
          const ws = conn.ws;
          switch (frame.kind) {
            case 'text':
            case 'binary':
              // ws sends a Buffer as a text frame unchecked: text frames can hold invalid UTF-8 too.
              ws.send(frame.data, { binary: frame.kind === 'binary' });
              break;
            case 'fragments': {
              const at = [...new Set(frame.cuts.map((c) => Math.floor(c * frame.data.length)))].sort(
                (a, b) => a - b,
              );
              let from = 0;
              for (const cut of at) {
                ws.send(frame.data.subarray(from, cut), { binary: frame.binary, fin: false });
                from = cut;
              }
              ws.send(frame.data.subarray(from), { binary: frame.binary, fin: true });
              break;
            }
            case 'oversize':
              ws.send(
                `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"${'x'.repeat(frame.size)}"}}`,
              );
              break;
            case 'ping':
              ws.ping(frame.data);
              break;
            case 'pong':
              ws.pong(frame.data);
              break;
          }
          if (ws.readyState === WebSocket.OPEN) ws.send(probe(cases));
          const outcome = await conn.answerOrClose(`probe-${cases}`);
          if (outcome === 'closed') {
            assert.ok(acceptableClose(conn.closeCode!), `closed with ${conn.closeCode} after ${frame.kind}`);
          }
          if (frame.kind === 'oversize') assert.equal(outcome === 'closed' && conn.closeCode, 1009);
          await crashes.settle();
          crashes.assertNone(`ws ${frame.kind}`);
        }),
        fuzzOptions(LIB_CASES),
      );
    } finally {
      conn.ws.close();
      logCases('ws', cases);
    }
    await assertHealthyAfter(gw, crashes, 'ws', baseline, 'ws frame fuzz');
  });

  test('hand-built frames on a raw socket: reserved bits and opcodes, unmasked, lengths, control frames', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'ws');
    const metrics = gw.gateway.app.get(GatewayMetrics);
    const internalErrors = () =>
      (metrics.internalErrors.get('ws_message') ?? 0) + (metrics.internalErrors.get('ws_upgrade') ?? 0);
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(rawFrame, { minLength: 1, maxLength: 3 }), async (frames) => {
          cases++;
          const failuresBefore = internalErrors();
          const c = await RawConnection.open(port);
          try {
            c.send(text(INIT));
            await c.until(() => c.texts.some((t) => t.includes('"init"')) || c.ended, 'initialize answer');
            for (const f of frames) c.send(f);
            c.send(text(probe(cases)));
            const id = `"probe-${cases}"`;
            const sentClose = frames.some((f) => f.opcode === 0x8);
            await c.until(
              () => c.texts.some((t) => t.includes(id)) || c.closeCode !== undefined || c.ended,
              'answer or close',
            );
            if (!c.texts.some((t) => t.includes(id))) {
              const what = `after ${frames.map((f) => `op${f.opcode}${f.fin ? '' : '~'}${f.rsv ? `r${f.rsv}` : ''}${f.masked ? '' : 'u'}/${f.length}/${f.payload.length}`).join(',')}`;
              // RFC 6455 §5.5.1: the answer to a close frame of ours echoes its code and reason,
              // whatever the code (1011 included); any other close is the server's own.
              const echoed = frames.some((f) => f.opcode === 0x8 && c.closePayload?.equals(f.payload));
              if (c.closeCode === undefined) {
                assert.ok(sentClose, `connection dropped without a close frame ${what}`);
              } else if (!echoed) {
                assert.ok(acceptableClose(c.closeCode), `closed with ${c.closeCode} ${what}`);
              }
            }
          } finally {
            c.socket.destroy();
          }
          // The server's own 1011 comes from its error boundary, which counts it.
          assert.equal(internalErrors(), failuresBefore, 'no internal error at the WebSocket entry points');
          await crashes.settle();
          crashes.assertNone('raw ws frames');
        }),
        fuzzOptions(RAW_CASES),
      );
    } finally {
      logCases('ws raw frames', cases);
    }
    await assertHealthyAfter(gw, crashes, 'ws', baseline, 'raw frame fuzz');
  });

  test('leak check after the whole suite: no session, child process, socket or timer left', async () => {
    await assertNoLeaks(gw, undefined, 'before closing the gateway'); // sessions expire, children exit
    assert.equal(gw.gateway.app.get(SessionService).size, 0, 'no session left');
    await gw.close();
    await assertNoLeaks(undefined, beforeGateway, 'after the gateway closed');
    await crashes.settle();
    assert.equal(crashes.total, 0, 'no uncaught exception or unhandled rejection in the whole file');
  });
});
