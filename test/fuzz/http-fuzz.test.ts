/**
 * Property-based fuzzing of every HTTP entry point of the real app: the request line, path,
 * query and headers anywhere; message bodies on /mcp (2025-11-25 sessions, including sessions
 * that live on another transport, and 2026-07-28 sessionless), and the legacy /sse + /messages
 * pair with its query. Each case must get an answer that is not a server error, and nothing may
 * reach the process as an uncaught exception or unhandled rejection; after each property an SDK
 * client is served and every session, socket and timer the fuzzing made is gone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fc from 'fast-check';
import { WebSocket } from 'ws';
import { SessionService } from '../../src/session/session.module';
import type { RunningGateway } from '../helpers/gateway';
import { SseReader } from '../helpers/sse-reader';
import { BOTH, openSession } from '../helpers/streamable-http-client';
import { body, headers, httpMethod, message, METHODS, target, toJsonText } from './arbitraries';
import {
  assertClientAnswer,
  assertHealthyAfter,
  assertNoLeaks,
  CrashRecorder,
  fuzzOptions,
  httpRequest,
  logCases,
  MAX_BODY_BYTES,
  rawHttp,
  resourceCounts,
  SessionOrigins,
  startFuzzGateway,
  warmBaseline,
  type ResourceCounts,
} from './fuzz-kit';

/** Cases per property: with ~10 ms a case this file runs in about a minute on a loaded 2-core box. */
const CASES = { request: 1500, session: 1500, sessionless: 1200, legacy: 2000 };

/** Sessions on each transport for bodies to be posted to; closed before the leak checks. */
interface Targets {
  ids: string[];
  close(): Promise<void>;
}

async function openTargets(base: string): Promise<Targets> {
  const streamable = await openSession(base, '2025-11-25');
  const legacy = await openSession(base, '2025-03-26');

  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, 'mcp');
  const wsId = await new Promise<string>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('message', (data) => resolve(JSON.parse(String(data)).params.sessionId));
  });
  ws.on('message', () => undefined);
  ws.on('error', () => undefined);

  const sse = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' } });
  const reader = new SseReader(sse);
  const endpoint = await reader.next();
  const sseId = new URL(endpoint!.data, base).searchParams.get('sessionId')!;
  // Keep reading so answers posted for this session never back up.
  const pump = (async () => {
    try {
      while ((await reader.next(60_000)) !== undefined);
    } catch {
      // cancelled at close
    }
  })();

  return {
    ids: [streamable, legacy, wsId, sseId],
    async close() {
      for (const id of [streamable, legacy]) {
        await fetch(`${base}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': id } }).then((r) =>
          r.arrayBuffer(),
        );
      }
      ws.close();
      await reader.cancel();
      await pump;
    },
  };
}

describe('fuzz: HTTP entry points', () => {
  let gw: RunningGateway;
  let port: number;
  const crashes = new CrashRecorder();
  let beforeGateway: ResourceCounts;

  before(async () => {
    crashes.install();
    beforeGateway = resourceCounts();
    gw = await startFuzzGateway();
    port = Number(new URL(gw.url).port);
    origins = new SessionOrigins(gw);
  });

  after(() => crashes.uninstall());

  let origins: SessionOrigins;

  /** One case: send, then the answer must be a client-level one and the process untouched. */
  async function send(request: Buffer, what: string, awaitAnswer = false): Promise<void> {
    const answer = await rawHttp(port, request, awaitAnswer);
    origins.note(what);
    assertClientAnswer(answer, what);
    await crashes.settle();
    crashes.assertNone(what);
  }

  test('request line, path, query and headers (repeated, huge, non-ASCII)', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'streamable');
    const targets = await openTargets(gw.url);
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          httpMethod,
          target(targets.ids),
          headers(targets.ids),
          fc.option(body(MAX_BODY_BYTES), { freq: 3 }),
          async (method, path, hs, b) => {
            cases++;
            await send(
              httpRequest(port, method, path, hs, b ?? undefined),
              `${method} ${path.slice(0, 200)} [${hs.map(([n, v]) => `${n}: ${String(v).slice(0, 60)}`).join(', ')}]${b ? ` + ${b.length} bytes` : ''}`,
            );
          },
        ),
        fuzzOptions(CASES.request),
      );
    } finally {
      await targets.close();
      logCases('http request', cases);
    }
    await assertHealthyAfter(gw, crashes, 'streamable', baseline, 'http request fuzz', origins);
  });

  test('/mcp 2025-11-25 bodies, to sessions on every transport (malformed, wrong shapes, deep, batches)', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'streamable');
    const targets = await openTargets(gw.url);
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.nat(targets.ids.length - 1),
          fc.constantFrom(undefined, '2025-11-25', '2025-06-18', '2025-03-26', '2026-07-28'),
          fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain'),
          body(MAX_BODY_BYTES),
          async (which, version, type, b) => {
            cases++;
            const hs: Array<[string, string]> = [
              ['content-type', type],
              ['accept', BOTH],
              ['mcp-session-id', targets.ids[which]],
            ];
            if (version) hs.push(['mcp-protocol-version', version]);
            await send(httpRequest(port, 'POST', '/mcp', hs, b), `POST /mcp to session ${which}`, true);
          },
        ),
        fuzzOptions(CASES.session),
      );
    } finally {
      await targets.close();
      logCases('mcp session', cases);
    }
    await assertHealthyAfter(gw, crashes, 'streamable', baseline, '/mcp session body fuzz', origins);
  });

  test('/mcp 2026-07-28 sessionless bodies', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'streamable');
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            // Mostly headers that match the body, so the message reaches the bridge to the upstream.
            {
              weight: 3,
              arbitrary: message.map((m) => {
                const params = m.params as { name?: unknown } | undefined;
                return {
                  method: typeof m.method === 'string' ? m.method : undefined,
                  name: typeof params?.name === 'string' ? params.name : undefined,
                  b: Buffer.from(toJsonText(m)),
                };
              }),
            },
            {
              weight: 1,
              arbitrary: fc.record({
                method: fc.option(fc.constantFrom(...METHODS, 'x'), { nil: undefined }),
                name: fc.option(fc.constantFrom('echo', 'nope'), { nil: undefined }),
                b: body(MAX_BODY_BYTES),
              }),
            },
          ),
          async ({ method, name, b }) => {
            cases++;
            const hs: Array<[string, string]> = [
              ['content-type', 'application/json'],
              ['accept', BOTH],
              ['mcp-protocol-version', '2026-07-28'],
            ];
            if (method) hs.push(['mcp-method', method.replace(/[^\x20-\x7e]/g, '?')]);
            if (name) hs.push(['mcp-name', name.replace(/[^\x20-\x7e]/g, '?')]);
            await send(httpRequest(port, 'POST', '/mcp', hs, b), `sessionless POST ${method}`, true);
          },
        ),
        fuzzOptions(CASES.sessionless),
      );
    } finally {
      logCases('mcp sessionless', cases);
    }
    await assertHealthyAfter(gw, crashes, 'streamable', baseline, '/mcp sessionless body fuzz', origins);
  });

  test('legacy /sse query and headers, /messages bodies', async () => {
    crashes.reset();
    const baseline = await warmBaseline(gw, 'sse');
    const targets = await openTargets(gw.url);
    let cases = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          target(targets.ids).map((t) => t.replace(/^[^?]*/, '')),
          fc.nat(targets.ids.length - 1),
          headers(targets.ids),
          body(MAX_BODY_BYTES),
          async (stream, query, which, hs, b) => {
            cases++;
            if (stream) {
              // GET /sse with any query: a resume, a client id, garbage.
              await send(httpRequest(port, 'GET', `/sse${query}`, hs), `GET /sse${query.slice(0, 200)}`);
              return;
            }
            const sep = query === '' ? '?' : '&';
            const path = `/messages${query}${sep}sessionId=${encodeURIComponent(targets.ids[which])}`;
            await send(
              httpRequest(port, 'POST', path, [['content-type', 'application/json'], ...hs], b),
              `POST ${path.slice(0, 200)}`,
            );
          },
        ),
        fuzzOptions(CASES.legacy),
      );
    } finally {
      await targets.close();
      logCases('legacy sse', cases);
    }
    await assertHealthyAfter(gw, crashes, 'sse', baseline, 'legacy sse fuzz', origins);
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
