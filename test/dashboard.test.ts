/**
 * /dashboard in a real browser (Debian's chromium through playwright-core): the page loads with
 * no console error and no request outside the gateway, shows every required panel, and its
 * figures move while SDK clients call tools through the gateway. Also: the SSE stream's frames,
 * and the admin-token rules (Bearer, ?token= → cookie, 401 without).
 *
 * @requires chromium (scripts/test-setup.mjs installs or names it before any test runs)
 */
import assert from 'node:assert/strict';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { connectClient } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';

/** The page's DOM, inside page.waitForFunction callbacks (this file compiles without the DOM lib). */
declare const document: any;

/** The `chromium` on PATH, as scripts/test-setup.mjs found it (Debian: /usr/bin; Ubuntu's snap: /snap/bin). */
function chromiumOnPath(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, 'chromium'), constants.X_OK);
      return join(dir, 'chromium');
    } catch {
      // not here
    }
  }
  return '/usr/bin/chromium';
}

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const PANELS = ['connections', 'throughput', 'latency', 'errors', 'pools', 'vsm', 'alerts', 'replicas'];

/** Reads SSE frames from /dashboard/stream until `count` data lines arrived. */
async function readFrames(url: string, count: number, headers: Record<string, string> = {}): Promise<any[]> {
  const res = await fetch(`${url}/dashboard/stream`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const frames: any[] = [];
  let buffer = '';
  while (frames.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (block.startsWith('data: ')) frames.push(JSON.parse(block.slice(6)));
    }
  }
  await reader.cancel();
  return frames;
}

describe('dashboard', () => {
  let gw: RunningGateway;
  let browser: Browser;

  before(async () => {
    gw = await startGateway({ stats: { sampleIntervalMs: 250, historySamples: 300 } });
    browser = await chromium.launch({ executablePath: chromiumOnPath(), args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  test('the page loads from the gateway alone, shows every panel, and its figures move under load', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    const origin = new URL(gw.url).origin;
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    page.on('pageerror', (err) => errors.push(err.message));
    await context.route('**/*', (route) => {
      requests.push(route.request().url());
      if (new URL(route.request().url()).origin !== origin) return route.abort();
      return route.continue();
    });

    const response = await page.goto(`${gw.url}/dashboard`);
    assert.equal(response?.status(), 200);
    for (const panel of PANELS) {
      assert.equal(await page.locator(`[data-panel="${panel}"]`).count(), 1, `panel ${panel}`);
      assert.ok(await page.locator(`[data-panel="${panel}"]`).isVisible(), `panel ${panel} visible`);
    }
    // The charts are drawn by uPlot (served by the gateway).
    await page.waitForFunction(() => document.querySelectorAll('.uplot canvas').length >= 6);
    await page.waitForFunction(() => Number(document.body.dataset.frames ?? 0) >= 2);

    const figure = (name: string) =>
      page.locator(`[data-figure="${name}"] b`).first().textContent({ timeout: 5000 });
    const totalBefore = Number((await figure('messages in'))!.replace(/\D/g, ''));

    // Load: SDK clients on two transports calling the embedded demo's echo tool.
    const clients = await Promise.all([connectClient(gw.url, 'streamable'), connectClient(gw.url, 'ws')]);
    await page.waitForFunction(() =>
      /[1-9]/.test(document.querySelector('[data-figure="ws"] b')?.textContent ?? ''),
    );
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        clients.map(({ client }) => client.callTool({ name: 'echo', arguments: { text: `r${round}` } })),
      );
    }
    await page.waitForFunction(
      (before) =>
        Number(document.querySelector('[data-figure="messages in"] b')?.textContent?.replace(/\D/g, '')) >=
        before + 40,
      totalBefore,
    );
    const inRate = await page.waitForFunction(() => {
      const text = document.querySelector('[data-figure="in/s"] b')?.textContent ?? '';
      return Number(text.replace(/[^\d.]/g, '')) > 0 ? text : false;
    });
    assert.ok(await inRate.jsonValue());
    const streamable = await figure('streamable');
    assert.match(streamable!, /^1 conn/);

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/dashboard.png', fullPage: true });
    await Promise.all(clients.map(({ client }) => client.close()));
    await context.close();

    assert.deepEqual(errors, [], 'no console error');
    assert.ok(requests.length >= 5, `requests seen: ${requests.join(', ')}`);
    for (const url of requests) assert.equal(new URL(url).origin, origin, `request to ${url}`);
  });

  test('/dashboard/stream sends one JSON frame per sample with the panels’ figures', async () => {
    // A new page is first sent the recent frames, then one per sample.
    const frames = await readFrames(gw.url, 3);
    assert.ok(frames.length >= 3);
    const last = frames[frames.length - 1];
    for (const key of [
      'connections',
      'messagesInPerSecond',
      'latencyMs',
      'errors',
      'pools',
      'vsmPerSecond',
      'alerts',
      'replicas',
    ]) {
      assert.ok(key in last, key);
    }
    assert.deepEqual(Object.keys(last.connections).sort(), ['sse', 'streamable', 'ws']);
    assert.equal(last.replicas[0].state, 'active');
    assert.ok(frames[0].t < last.t);
  });
});

describe('dashboard access with ADMIN_TOKEN', () => {
  const token = 'dashboard-token-0123456789';
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ admin: { token } });
  });
  after(() => gw?.close());

  test('no token → 401; Bearer → 200; ?token= sets a cookie that then opens page and stream', async () => {
    assert.equal((await fetch(`${gw.url}/dashboard`)).status, 401);
    assert.equal((await fetch(`${gw.url}/dashboard/stream`)).status, 401);
    assert.equal((await fetch(`${gw.url}/dashboard?token=wrong-token-0123456789`)).status, 401);
    const bearer = await fetch(`${gw.url}/dashboard`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 200);
    assert.match(await bearer.text(), /data-panel="alerts"/);

    const viaQuery = await fetch(`${gw.url}/dashboard?token=${token}`, { redirect: 'manual' });
    assert.equal(viaQuery.status, 303);
    assert.equal(viaQuery.headers.get('location'), '/dashboard');
    const cookie = viaQuery.headers.get('set-cookie')!.split(';')[0];
    assert.match(viaQuery.headers.get('set-cookie')!, /HttpOnly/);
    assert.equal((await fetch(`${gw.url}/dashboard`, { headers: { cookie } })).status, 200);
    const frames = await readFrames(gw.url, 1, { cookie });
    assert.ok(frames.length >= 1);
  });
});
