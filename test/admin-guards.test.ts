/**
 * One guard set on every admin route (README "Security"): the caller's rate limit, the admin
 * token, S5 `check_compliance` (and `verify_identity` before a change), and an Audit line for
 * every change. The admin routes are found in the running app, so a new one is checked too; the
 * Audit logger cannot be set below info, at start or through /admin/log-levels.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { bootstrap } from '../src/bootstrap';
import { apiKeyDigest } from '../src/policy/identity';
import { startGateway, type RunningGateway } from './helpers/gateway';

type Line = Record<string, unknown>;

/** A pino destination that keeps every JSON line. */
class LineSink extends Writable {
  readonly lines: Line[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l !== '') this.lines.push(JSON.parse(l) as Line);
    done();
  }
  audit(): Line[] {
    return this.lines.filter((l) => l.context === 'Audit');
  }
}

const ADMIN = 'admin-guards-token-0123456789';
const ALICE = 'alice-key-0123456789abcdef0123';

interface AdminCall {
  method: string;
  path: string;
  body?: string;
}

/**
 * A request for each admin route, by its pattern. Bodies are ones the handler refuses or that
 * change nothing lasting, so the routes can be called over and over.
 */
const CALLS: Record<string, AdminCall> = {
  'GET /admin/services': { method: 'GET', path: '/admin/services' },
  'GET /admin/config': { method: 'GET', path: '/admin/config' },
  'POST /admin/services/:service': {
    method: 'POST',
    path: '/admin/services/guard-probe',
    body: '{"replicas":"nope"}',
  },
  'PATCH /admin/services/:service': {
    method: 'PATCH',
    path: '/admin/services/nope',
    body: '{"mode":"pooled"}',
  },
  'POST /admin/services/:service/replicas': {
    method: 'POST',
    path: '/admin/services/nope/replicas',
    body: '{}',
  },
  'PATCH /admin/services/:service/replicas/:id': {
    method: 'PATCH',
    path: '/admin/services/demo/replicas/nope',
    body: '{"weight":2}',
  },
  'DELETE /admin/services/:service/replicas/:id': {
    method: 'DELETE',
    path: '/admin/services/demo/replicas/nope',
  },
  'GET /admin/log-levels': { method: 'GET', path: '/admin/log-levels' },
  'PUT /admin/log-levels': {
    method: 'PUT',
    path: '/admin/log-levels',
    body: '{"modules":{"Session":"info"}}',
  },
};

const changes = (c: AdminCall) => c.method !== 'GET';

/** Every route of every Nest controller under /admin, as `METHOD /admin/pattern`. */
function adminRoutes(gw: RunningGateway): string[] {
  const discovery = gw.gateway.app.get(DiscoveryService, { strict: false });
  const routes: string[] = [];
  const join = (...parts: string[]) =>
    '/' +
    parts
      .flatMap((p) => p.split('/'))
      .filter((p) => p !== '')
      .join('/');
  for (const wrapper of discovery.getControllers()) {
    const type = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
    if (!type) continue;
    const prefix = String(Reflect.getMetadata(PATH_METADATA, type) ?? '');
    for (const name of Object.getOwnPropertyNames(type.prototype)) {
      const handler = (type.prototype as Record<string, unknown>)[name];
      if (typeof handler !== 'function' || name === 'constructor') continue;
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      const path = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (method === undefined || path === undefined) continue;
      const full = join(prefix, path);
      if (full === '/admin' || full.startsWith('/admin/')) routes.push(`${RequestMethod[method]} ${full}`);
    }
  }
  return routes.sort();
}

async function send(base: string, call: AdminCall, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${call.path}`, {
    method: call.method,
    headers: { ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: call.body,
  });
  return { status: res.status, text: await res.text() };
}

const auth = { authorization: `Bearer ${ADMIN}` };

/**
 * One sink for the file: nestjs-pino keeps the first logger of the process for every line logged
 * outside a request, whichever gateway logs it.
 */
const sink = new LineSink();

describe('every admin route: token, S5, audit', () => {
  let gw: RunningGateway;
  let emitter: EventEmitter2;

  before(async () => {
    gw = await startGateway({}, { ADMIN_TOKEN: ADMIN, LOG_LEVEL: 'warn' }, { logStream: sink });
    emitter = gw.gateway.app.get(EventEmitter2);
  });
  after(() => gw?.close());

  test('the admin routes of the app are the ones this file calls', () => {
    assert.deepEqual(adminRoutes(gw), Object.keys(CALLS).sort());
  });

  test('without the admin token each route is 401, and the refusal is audited', async () => {
    for (const [route, call] of Object.entries(CALLS)) {
      for (const headers of [{}, { authorization: 'Bearer wrong-token' }] as Record<string, string>[]) {
        const before = sink.audit().length;
        const res = await send(gw.url, call, headers);
        assert.equal(res.status, 401, `${route}: ${res.text}`);
        const lines = sink.audit().slice(before);
        assert.deepEqual(
          lines.map((l) => [l.event, l.action, l.reason]),
          [
            [
              'refused',
              `admin.${call.method} ${call.path}`,
              'authorization' in headers ? 'admin_token_invalid' : 'admin_token_missing',
            ],
          ],
          route,
        );
        assert.ok(!JSON.stringify(lines).includes('wrong-token'), 'the token sent is never logged');
      }
    }
  });

  test('S5 check_compliance is asked on each route, and its denial is 403', async () => {
    const asked: string[] = [];
    const deny = (e: { type: string; action?: string }) => {
      if (e.type !== 'check_compliance' || !e.action?.startsWith('admin.')) return undefined;
      asked.push(e.action);
      return { allowed: false, reason: 'audit week' };
    };
    emitter.on('s5_policy', deny);
    try {
      for (const [route, call] of Object.entries(CALLS)) {
        const res = await send(gw.url, call, auth);
        assert.equal(res.status, 403, `${route}: ${res.text}`);
        assert.match(res.text, /audit week/);
      }
    } finally {
      emitter.off('s5_policy', deny);
    }
    assert.deepEqual(
      asked,
      Object.values(CALLS).map((c) => `admin.${c.method} ${c.path}`),
    );
  });

  test('every change asks S5 verify_identity first; a denial is 403 and changes nothing', async () => {
    const asked: string[] = [];
    const deny = (e: { type: string; operation?: string }) => {
      if (e.type !== 'verify_identity') return undefined;
      asked.push(e.operation ?? '');
      return { allowed: false, reason: 'change freeze' };
    };
    const levels = await send(gw.url, CALLS['GET /admin/log-levels'], auth);
    emitter.on('s5_policy', deny);
    try {
      for (const [route, call] of Object.entries(CALLS)) {
        const res = await send(gw.url, call, auth);
        assert.equal(res.status, changes(call) ? 403 : 200, `${route}: ${res.text}`);
      }
      // The report's case: six attempts in a row to silence the audit log, none let through.
      for (let i = 0; i < 6; i++) {
        const res = await send(
          gw.url,
          { method: 'PUT', path: '/admin/log-levels', body: '{"modules":{"Audit":"silent"}}' },
          auth,
        );
        assert.equal(res.status, 403, res.text);
      }
    } finally {
      emitter.off('s5_policy', deny);
    }
    const expected = Object.values(CALLS)
      .filter(changes)
      .map((c) => `admin.${c.method} ${c.path}`);
    for (let i = 0; i < 6; i++) expected.push('admin.PUT /admin/log-levels');
    assert.deepEqual(asked, expected);
    assert.equal((await send(gw.url, CALLS['GET /admin/log-levels'], auth)).text, levels.text);
  });

  test('every change is audited: applied or refused by the handler, one line each with its status', async () => {
    for (const [route, call] of Object.entries(CALLS)) {
      const before = sink.audit().length;
      const res = await send(gw.url, call, auth);
      const lines = sink.audit().slice(before);
      if (!changes(call)) {
        assert.equal(res.status, 200, route);
        assert.deepEqual(lines, [], `${route}: reads are not audited one by one`);
        continue;
      }
      assert.equal(lines.length, 1, `${route}: ${JSON.stringify(lines)}`);
      const [line] = lines;
      assert.equal(line.action, `admin.${call.method} ${call.path}`);
      assert.equal(line.clientId, 'admin');
      assert.equal(line.status, res.status, route);
      assert.equal(line.event, res.status < 400 ? 'admin_change' : 'admin_change_refused', route);
      assert.equal(typeof line.correlationId, 'string');
    }
  });
});

describe('the Audit logger stays at info', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(
      { clients: { alice: { apiKeys: [apiKeyDigest(ALICE)], disabled: false } } },
      { ADMIN_TOKEN: ADMIN, AUTH_MODE: 'api_key', LOG_LEVEL: 'info' },
      { logStream: sink },
    );
  });
  after(() => gw?.close());

  const refusedMcp = async () => {
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-api-key': 'not-a-key-of-anyone-0123456789',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'a', version: '1' } },
      }),
    });
    await res.arrayBuffer();
    assert.equal(res.status, 401);
  };

  test('PUT Audit above info is 400; a silent default leaves Audit on: a refusal is still a line', async () => {
    for (const level of ['warn', 'error', 'fatal', 'silent']) {
      const res = await send(
        gw.url,
        { method: 'PUT', path: '/admin/log-levels', body: JSON.stringify({ modules: { Audit: level } }) },
        auth,
      );
      assert.equal(res.status, 400, `Audit=${level}: ${res.text}`);
      assert.match(res.text, /Audit cannot be set below info/);
    }
    const quiet = await send(
      gw.url,
      { method: 'PUT', path: '/admin/log-levels', body: '{"default":"silent","modules":{"Audit":"info"}}' },
      auth,
    );
    assert.equal(quiet.status, 200, quiet.text);
    const before = sink.audit().length;
    await refusedMcp();
    const lines = sink.audit().slice(before);
    assert.deepEqual(
      lines.map((l) => [l.event, l.status]),
      [['refused', 401]],
    );
    // And with no module level of its own either.
    const none = await send(
      gw.url,
      { method: 'PUT', path: '/admin/log-levels', body: '{"modules":{"Audit":null}}' },
      auth,
    );
    assert.equal(none.status, 200, none.text);
    const again = sink.audit().length;
    await refusedMcp();
    assert.equal(sink.audit().length, again + 1);
    // The change that turned the rest off is on record too.
    assert.ok(
      sink.audit().some((l) => l.event === 'admin_change' && l.action === 'admin.PUT /admin/log-levels'),
    );
  });

  test('LOG_LEVELS naming Audit above info does not start', async () => {
    await assert.rejects(
      bootstrap({
        env: { LOG_LEVEL: 'silent', LOG_LEVELS: 'Session=debug,Audit=warn' },
        config: { port: 0 },
      }),
      /Audit cannot be set below info/,
    );
  });
});

describe('the admin rate limit is on every admin route', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(
      { rateLimit: { enabled: true, perSecond: 0.1, burst: 2 } },
      { ADMIN_TOKEN: ADMIN },
    );
  });
  after(() => gw?.close());

  test('once the address has spent its burst, each route answers 429', async () => {
    for (let i = 0; i < 2; i++)
      assert.equal((await send(gw.url, CALLS['GET /admin/services'], auth)).status, 200);
    for (const [route, call] of Object.entries(CALLS)) {
      const res = await send(gw.url, call, auth);
      assert.equal(res.status, 429, `${route}: ${res.text}`);
    }
  });
});
