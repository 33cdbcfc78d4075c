/**
 * /dashboard?token=… as a browser uses it: a valid token becomes the dashboard cookie and leaves
 * the address bar; a junk one sent along with a valid cookie is dropped from the address but never
 * replaces the cookie (the page stays usable); junk alone is 401.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type RunningGateway } from './helpers/gateway';

const ADMIN = 'dashboard-access-token-0123456789';
const COOKIE = 'mcp_gateway_dashboard';

describe('/dashboard?token= and the dashboard cookie', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({}, { ADMIN_TOKEN: ADMIN });
  });
  after(() => gw?.close());

  const get = async (path: string, cookie?: string) => {
    const res = await fetch(`${gw.url}${path}`, {
      redirect: 'manual',
      headers: cookie === undefined ? {} : { cookie: `${COOKIE}=${encodeURIComponent(cookie)}` },
    });
    await res.arrayBuffer();
    return {
      status: res.status,
      location: res.headers.get('location'),
      setCookie: res.headers.get('set-cookie'),
    };
  };

  test('a valid ?token= becomes the cookie, and the address loses it', async () => {
    const res = await get(`/dashboard?token=${ADMIN}`);
    assert.equal(res.status, 303);
    assert.equal(res.location, '/dashboard');
    assert.match(
      res.setCookie ?? '',
      new RegExp(`^${COOKIE}=${ADMIN}; Path=/dashboard; HttpOnly; SameSite=Strict`),
    );
  });

  test('junk ?token= with a valid cookie: redirected without it, the cookie is not replaced', async () => {
    for (const junk of ['junk', 'x'.repeat(200), '%00', '']) {
      const res = await get(`/dashboard?token=${junk}`, ADMIN);
      assert.equal(res.status, 303, junk);
      assert.equal(res.location, '/dashboard');
      assert.equal(res.setCookie, null, `?token=${junk.slice(0, 20)} must not set the cookie`);
    }
    // The browser's cookie is still the good one: the page and its data load.
    assert.equal((await get('/dashboard', ADMIN)).status, 200);
    assert.equal((await get('/dashboard/snapshot', ADMIN)).status, 200);
  });

  test('junk ?token= alone, or a junk cookie, is 401 and sets nothing', async () => {
    for (const [path, cookie] of [
      ['/dashboard?token=junk', undefined],
      ['/dashboard', 'junk'],
      ['/dashboard?token=junk', 'also-junk'],
    ] as const) {
      const res = await get(path, cookie);
      assert.equal(res.status, 401, `${path} cookie=${cookie}`);
      assert.equal(res.setCookie, null);
    }
  });
});
