// End-to-end tests of the client module (client/rtwire.js, served by
// `rtwire serve` as /rtwire.js) in headless Chromium. Each page is opened on
// the server's (or a proxy's) origin at /healthz, imports /rtwire.js and
// connects with baseUrl "" (the page's origin); what the client hands the
// application is recorded on `window.h` (support.mjs: recorder) and read by
// the test through page.evaluate, with a deadline on every wait.
//
//  (a) each transport forced alone: join, publish with an ack, messages from
//      Node (text, and non-UTF-8 bytes arriving as a Uint8Array), ids as
//      their publishers were given them;
//  (b) chaos: a proxy cuts every connection every 3 s while Node publishes
//      20 messages a second for 30 s; the four transports at once, each in
//      its own browser context and channel, each gets every message once,
//      in order;
//  (c) fallback: behind a proxy that refuses WebSocket upgrades, the
//      default transports end on SSE and lose nothing;
//  (d) restart: the server is replaced by a new one (new epoch) behind the
//      proxy; every transport reports gap/epoch_changed and goes on;
//  (e) presence: alice sees bob join and leave (client.close(), and the
//      page closed), as GET /channels/room/presence does.
//
// The checks themselves are in support.mjs, shared with client-node.test.mjs.
// Over https (RTWIRE_E2E_TLS_CERT set, the second pass of tests/e2e/run)
// only (a) (and the GET /rtwire.js check) runs. This file needs no
// WebSocket in Node (the pages have Chromium's); client-node.test.mjs does.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TLS_CERT, TRANSPORTS, HTTP_SCHEME, WAIT_MS, launchChromium, openPage, pageRecorder, startServer, within,
  checkTransport, checkChaos, checkFallback, checkRestart, checkPresence,
} from './support.mjs';

const HTTP_ONLY = TLS_CERT ? 'the https pass runs only the per-transport checks' : false;

let browser;

/** A recorder in a fresh page (context of its own) on `origin`. */
async function make(origin, options) {
  const { page, context, problems, consoleErrors } = await openPage(browser, origin);
  try {
    const h = await pageRecorder(page, options);
    return { ...h, problems, consoleErrors, dispose: () => context.close() };
  } catch (e) {
    await context.close().catch(() => {});
    throw e;
  }
}

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  if (browser) await within(WAIT_MS, browser.close(), 'Chromium to close');
});

test(`GET /rtwire.js over ${HTTP_SCHEME} is the module, as JavaScript`, async () => {
  const server = await startServer();
  try {
    const r = await fetch(`${server.base}/rtwire.js`, { signal: AbortSignal.timeout(WAIT_MS) });
    const body = await r.text();
    assert.equal(r.status, 200, `GET /rtwire.js: ${r.status} ${body.slice(0, 200)}`);
    assert.match(r.headers.get('content-type') ?? '', /^text\/javascript\b/, 'its content type');
    assert.match(body, /export\s+(async\s+)?function\s+connect\b|export\s*\{[^}]*\bconnect\b/, 'it exports connect');
  } finally {
    await server.stop();
  }
});

for (const t of TRANSPORTS) {
  test(`(a) Chromium over ${HTTP_SCHEME}, ${t} alone: join, publish with ack, text and binary from Node`,
    { timeout: 4 * WAIT_MS }, () => checkTransport(make, t));
}

test('(b) Chromium, chaos: cuts every 3 s, 20 messages/s for 30 s, each transport alone, at once: every message once, in order',
  { skip: HTTP_ONLY, timeout: 30_000 + 6 * WAIT_MS }, async (t) => {
    // Every cut breaks a WebSocket and an SSE stream under the client: it
    // must go "reconnecting". A held long poll or a short poll dies before
    // its answer started, on a reused connection, and Chromium retries such
    // a GET itself on a new one: the client may never see the cut (it gets
    // every message all the same, which is what is checked for them).
    const report = await checkChaos(make, { seconds: 30, cutEveryMs: 3000, mustReconnect: ['websocket', 'sse'] });
    t.diagnostic(JSON.stringify(report));
  });

test('(c) Chromium, fallback: behind a proxy refusing upgrades the default transports end on sse',
  { skip: HTTP_ONLY, timeout: 4 * WAIT_MS }, async (t) => {
    const report = await checkFallback(make);
    t.diagnostic(JSON.stringify(report));
  });

test('(d) Chromium, restart: a new server behind the proxy gives gap/epoch_changed, then its messages, on each transport',
  { skip: HTTP_ONLY, timeout: 6 * WAIT_MS }, async (t) => {
    const report = await checkRestart(make);
    t.diagnostic(JSON.stringify(report));
  });

test('(e) Chromium, presence: alice sees bob join, and leave by client.close() and by his page closing',
  { skip: HTTP_ONLY, timeout: 6 * WAIT_MS }, async (t) => {
    const leftAfterMs = await checkPresence(make, { hows: ['close', 'dispose'] });
    t.diagnostic(`bob's leaving reached alice after ${JSON.stringify(leftAfterMs)} ms`);
  });
