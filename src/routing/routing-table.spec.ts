import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ServiceConfig } from '../config/gateway-config';
import { ServicesSchema } from '../config/gateway-file-schema';
import { ReplicaStates } from './replica-states';
import { RoutingTable } from './routing-table';
import { applyServicesEdit, editProblems } from './services-edit';

function services(input: unknown): Record<string, ServiceConfig> {
  return ServicesSchema.parse(input);
}

const http = (port: number, extra: object = {}) => ({
  transport: 'streamable-http',
  url: `http://127.0.0.1:${port}/mcp`,
  ...extra,
});

function table(input: unknown = { svc: { replicas: [http(1), http(2), http(3)] } }) {
  const parsed = services(input);
  return new RoutingTable(parsed, Object.keys(parsed)[0]);
}

describe('replica ids', () => {
  test('an explicit id is kept; others are derived from the service and the URL or command', () => {
    const s = services({
      svc: {
        replicas: [
          http(1, { id: 'primary' }),
          http(2),
          { transport: 'stdio', command: 'node', args: ['server.js'] },
        ],
      },
    });
    const ids = s.svc.replicas.map((r) => r.id);
    assert.equal(ids[0], 'primary');
    assert.match(ids[1], /^svc-[0-9a-f]{8}$/);
    assert.match(ids[2], /^svc-[0-9a-f]{8}$/);
    assert.notEqual(ids[1], ids[2]);
  });

  test('editing the list (insert, reorder, reweight, new headers) renames no other replica', () => {
    const before = services({ svc: { replicas: [http(1), http(2), http(3)] } }).svc.replicas;
    const after = services({
      svc: {
        replicas: [http(9), http(3), http(1, { weight: 5, headers: { authorization: 'Bearer x' } }), http(2)],
      },
    }).svc.replicas;
    const idOf = (list: typeof before, port: number) =>
      list.find((r) => (r as { url: string }).url.includes(`:${port}/`))!.id;
    for (const port of [1, 2, 3]) assert.equal(idOf(after, port), idOf(before, port), `port ${port}`);
  });

  test('identical replicas get -2, -3 in list order; an explicit id used twice is a problem', () => {
    const ids = services({ svc: { replicas: [http(1), http(1), http(1)] } }).svc.replicas.map((r) => r.id);
    assert.deepEqual(ids.slice(1), [`${ids[0]}-2`, `${ids[0]}-3`]);
    const bad = ServicesSchema.safeParse({
      a: { replicas: [http(1, { id: 'x' })] },
      b: { replicas: [http(2, { id: 'x' })] },
    });
    assert.equal(bad.success, false);
    assert.match(bad.error!.issues[0].message, /replica id "x" is already used by services\.a\.replicas\.0/);
    assert.deepEqual(bad.error!.issues[0].path, ['b', 'replicas', 0, 'id']);
  });
});

describe('RoutingTable.pick', () => {
  test('returns every replica once, primary first, the same order for the same key', () => {
    const t = table();
    const ids = t.replicaIds('svc');
    for (let k = 0; k < 50; k++) {
      const order = t.pick('svc', `client-${k}`).map((r) => r.id);
      assert.equal(order.length, 3);
      assert.deepEqual([...order].sort(), [...ids].sort());
      assert.deepEqual(
        t.pick('svc', `client-${k}`).map((r) => r.id),
        order,
      );
    }
  });

  test('skips draining and unhealthy replicas and keeps the order of the rest', () => {
    const t = table();
    const full = t.pick('svc', 'k').map((r) => r.id);
    t.states.setDraining(full[0], true);
    assert.deepEqual(
      t.pick('svc', 'k').map((r) => r.id),
      full.slice(1),
    );
    t.states.setHealthy(full[2], false);
    assert.deepEqual(
      t.pick('svc', 'k').map((r) => r.id),
      [full[1]],
    );
    t.states.setHealthy(full[1], false);
    assert.deepEqual(t.pick('svc', 'k'), []);
    t.states.setDraining(full[0], false);
    assert.deepEqual(
      t.pick('svc', 'k').map((r) => r.id),
      [full[0]],
    );
  });

  test('a replica declared draining takes no new sessions', () => {
    const t = table({ svc: { replicas: [http(1, { id: 'a', draining: true }), http(2, { id: 'b' })] } });
    for (let k = 0; k < 20; k++)
      assert.deepEqual(
        t.pick('svc', `k${k}`).map((r) => r.id),
        ['b'],
      );
    assert.equal(t.view()[0].replicas[0].state, 'draining');
  });

  test('an unknown service throws UnknownServiceError', () => {
    assert.throws(() => table().pick('nope', 'k'), /unknown service "nope"/);
  });

  test('bounded loads: no replica gets more than ceil(c × (m+1) × w / W) sessions', () => {
    const t = table({
      svc: { routing: { boundedLoads: { factor: 1.25 } }, replicas: [http(1), http(2), http(3)] },
    });
    // Every session with the same key: unbounded, all of them would land on one replica.
    for (let m = 0; m < 120; m++) {
      const [first] = t.pick('svc', 'hot-client');
      t.place('svc', 'hot-client', first.id);
    }
    const loads = t.view()[0].replicas.map((r) => r.sessions);
    assert.equal(
      loads.reduce((a, b) => a + b),
      120,
    );
    for (const load of loads) assert.ok(load <= Math.ceil((1.25 * 120) / 3), `loads ${loads}`);
  });
});

describe('RoutingTable.keyFor', () => {
  const input = { clientId: 'alice', sessionId: 's-1', headers: { 'x-tenant': 'acme' } };

  test('client_id is the default; session and header are chosen per service', () => {
    const t = table({
      a: { replicas: [http(1)] },
      b: { routing: { key: 'session' }, replicas: [http(2)] },
      c: { routing: { key: 'header', header: 'X-Tenant' }, replicas: [http(3)] },
    });
    assert.equal(t.keyFor('a', input), 'alice');
    assert.equal(t.keyFor('b', input), 's-1');
    assert.equal(t.keyFor('c', input), 'x-tenant:acme');
    // Without the header the client id keeps one client's sessions together.
    assert.equal(t.keyFor('c', { ...input, headers: {} }), 'alice');
  });

  test('key "header" without a header name is refused by the schema', () => {
    const r = ServicesSchema.safeParse({ c: { routing: { key: 'header' }, replicas: [http(3)] } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0].path, ['c', 'routing', 'header']);
  });
});

describe('live changes', () => {
  test('add, reweight and remove change the ring incrementally: only the keys that must move move', () => {
    const t = table({ svc: { replicas: [http(1, { id: 'a' }), http(2, { id: 'b' })] } });
    const keys = Array.from({ length: 2000 }, (_, i) => `client-${i}`);
    const primary = () => new Map(keys.map((k) => [k, t.pick('svc', k)[0].id]));
    const before = primary();
    t.addReplica('svc', { ...http(3), id: 'c' } as never);
    const added = primary();
    for (const k of keys) {
      if (added.get(k) !== before.get(k)) assert.equal(added.get(k), 'c', `${k} moved between old replicas`);
    }
    t.updateReplica('svc', 'c', { weight: 3 });
    const reweighted = primary();
    for (const k of keys) {
      if (reweighted.get(k) !== added.get(k)) assert.equal(reweighted.get(k), 'c');
    }
    t.removeReplica('svc', 'c');
    assert.deepEqual(primary(), before);
  });

  test('a placement released after its replica was removed and re-added does not touch the newcomer', () => {
    const t = table({ svc: { replicas: [http(1, { id: 'a' })] } });
    const old = t.place('svc', 'k', 'a');
    t.removeReplica('svc', 'a');
    t.addReplica('svc', { ...http(1), id: 'a' } as never);
    t.place('svc', 'k', 'a');
    old.release();
    assert.equal(t.view()[0].replicas[0].sessions, 1);
  });

  test('a file edit applies only what changed in the file, keeping admin changes elsewhere', () => {
    const v1 = services({
      svc: { replicas: [http(1, { id: 'a' }), http(2, { id: 'b' })] },
      other: { replicas: [http(5, { id: 'o' })] },
    });
    const t = new RoutingTable(v1, 'svc', new ReplicaStates());
    t.updateReplica('svc', 'b', { draining: true }); // through the admin API
    const v2 = services({
      svc: { replicas: [http(1, { id: 'a', weight: 4 }), http(2, { id: 'b' }), http(3, { id: 'c' })] },
    });
    assert.deepEqual(editProblems(t, v1, v2, 'svc'), []);
    const summary = applyServicesEdit(t, v1, v2, 'svc');
    assert.deepEqual(summary.servicesRemoved, ['other']);
    assert.deepEqual(summary.replicasAdded, ['c']);
    assert.deepEqual(summary.replicasChanged, ['a']);
    assert.equal(t.hasService('other'), false);
    const view = t.view()[0].replicas;
    assert.deepEqual(
      view.map((r) => [r.id, r.weight, r.state]),
      [
        ['a', 4, 'active'],
        ['b', 1, 'draining'],
        ['c', 1, 'active'],
      ],
    );
  });

  test('an edit reusing an id the admin API gave another service is a problem', () => {
    const v1 = services({ a: { replicas: [http(1, { id: 'x' })] }, b: { replicas: [http(2, { id: 'y' })] } });
    const t = new RoutingTable(v1, 'a');
    t.addReplica('b', { ...http(3), id: 'z' } as never);
    const v2 = services({ a: { replicas: [http(1, { id: 'x' }), http(4, { id: 'z' })] }, b: v1.b });
    assert.deepEqual(editProblems(t, v1, v2, 'a'), [
      'services.a.replicas.1.id: replica id "z" is used by service "b"',
    ]);
  });
});
