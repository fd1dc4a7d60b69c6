// End-to-end test of the `rtwire serve` demo page (src/serve/demo.html) in
// headless Chromium, on each of its four transports.
//
// Builds nothing: runs the binary named by RTWIRE_BIN (default
// target/debug/rtwire, relative to the repository root) as
// `rtwire serve --port 0`, reads the port from its "listening on" line,
// drives the page with playwright-core and Debian's /usr/bin/chromium, and
// publishes with a plain HTTP POST from Node. Screenshots go to
// tests/e2e/artifacts/. `tests/e2e/run` installs what is missing and runs it,
// twice: over http, then over https.
//
// Over https: with RTWIRE_E2E_TLS_CERT and RTWIRE_E2E_TLS_KEY (PEM files of
// a certificate for 127.0.0.1 and its key, made at run time by
// `tests/e2e/run`), the server is started with --tls-cert/--tls-key, the page
// is loaded from https://, and its WebSocket must use wss://. Node's own
// requests trust the test CA through NODE_EXTRA_CA_CERTS (set by the run
// script). Chromium is told to accept exactly this certificate's key
// (--ignore-certificate-errors-spki-list): Debian's Chromium reads its trust
// store from an NSS database, which needs certutil (not installed here) to
// add a CA to; pinning the one key keeps every other certificate error an
// error, unlike --ignore-certificate-errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as support from './support.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = resolve(ROOT, process.env.RTWIRE_BIN || 'target/debug/rtwire');
const ARTIFACTS = join(HERE, 'artifacts');
/** Every wait in this file is bounded by this. */
const WAIT_MS = 15_000;

/** Set for the https run: the certificate and key the server presents. */
const TLS_CERT = process.env.RTWIRE_E2E_TLS_CERT;
const TLS_KEY = process.env.RTWIRE_E2E_TLS_KEY;
if (Boolean(TLS_CERT) !== Boolean(TLS_KEY)) {
  throw new Error('set both RTWIRE_E2E_TLS_CERT and RTWIRE_E2E_TLS_KEY, or neither');
}
const HTTP_SCHEME = TLS_CERT ? 'https' : 'http';
const WS_SCHEME = TLS_CERT ? 'wss' : 'ws';
/** Screenshots of the two runs side by side. */
const SHOT_PREFIX = TLS_CERT ? 'https-' : '';

/** The page's <option> values and what #status says once connected. */
const TRANSPORTS = [
  { value: 'websocket', label: 'WebSocket' },
  { value: 'sse', label: 'Server-Sent Events' },
  { value: 'long-poll', label: 'long polling' },
  { value: 'poll', label: 'short polling' },
];

let server; // the rtwire child process
let serverLog = ''; // its stderr, for failure messages
let serverExit; // resolves with { code, signal } when it exits
let base; // http://127.0.0.1:PORT
let browser;

const unique = () => randomBytes(4).toString('hex');

async function startProxyFor(port) {
  const { startProxy } = await import('./proxy.mjs');
  return startProxy({ targetPort: port });
}

/** Rejects after `ms` with a message naming what was awaited. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts `rtwire serve --port 0` (with TLS for the https run) and resolves with its base URL. */
function startServer() {
  const args = ['serve', '--port', '0'];
  if (TLS_CERT) args.push('--tls-cert', TLS_CERT, '--tls-key', TLS_KEY);
  server = spawn(BIN, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  serverExit = new Promise((ok) => server.once('exit', (code, signal) => ok({ code, signal })));
  const listening = new Promise((ok, fail) => {
    server.once('error', (e) => fail(new Error(`cannot start ${BIN}: ${e.message}`)));
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (chunk) => {
      serverLog += chunk;
      const m = serverLog.match(/rtwire serve: listening on (https?:\/\/\S+) \(epoch/);
      if (m) ok(m[1].replace(/\/$/, ''));
    });
    serverExit.then(({ code, signal }) =>
      fail(new Error(`rtwire exited early (code ${code}, signal ${signal}):\n${serverLog}`)));
  });
  return within(WAIT_MS, listening, `"listening on" from ${BIN}`);
}

/** SIGTERM, then SIGKILL if it is still there after the wait. */
async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return serverExit;
  server.kill('SIGTERM');
  try {
    return await within(WAIT_MS, serverExit, 'rtwire to exit after SIGTERM');
  } catch (e) {
    server.kill('SIGKILL');
    await serverExit;
    throw e;
  }
}

/** POSTs `text` to the room from Node and returns the id the server gave it. */
async function publish(room, text) {
  const r = await fetch(`${base}/channels/${encodeURIComponent(room)}`, {
    method: 'POST',
    body: text,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await r.text();
  assert.equal(r.status, 202, `POST /channels/${room}: ${r.status} ${body}`);
  const { id } = JSON.parse(body);
  assert.match(id, /^[0-9a-f]+-\d+$/, `POST /channels/${room} answered ${body}`);
  return id;
}

/** A fresh page (own context, so nothing is shared) on the demo. */
async function openDemo() {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems = [];
  const sockets = []; // URLs of the WebSockets the page opened
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('request', (r) => {
    // On an https page everything, the EventSource and fetches included,
    // must stay on https (Chromium would block mixed content anyway).
    const scheme = new URL(r.url()).protocol.replace(':', '');
    if (![HTTP_SCHEME, WS_SCHEME].includes(scheme)) problems.push(`${r.method()} ${r.url()}: not ${HTTP_SCHEME}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed loads are reported below with their URL.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    // The page has no icon; Chromium asks for one anyway.
    if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') {
      problems.push(`${r.request().method()} ${r.url()}: ${r.status()}`);
    }
  });
  page.on('requestfailed', (r) => {
    // Requests the page aborts itself when switching transports are fine.
    const failure = r.failure()?.errorText ?? '';
    if (!failure.includes('ERR_ABORTED')) problems.push(`${r.method()} ${r.url()}: ${failure}`);
  });
  const response = await page.goto(`${base}/`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, 'GET /');
  return { page, context, problems, sockets };
}

/** Picks the transport and room, clicks Connect, waits for #status. */
async function connect(page, transport, room, user) {
  await page.locator('#transport').selectOption(transport.value);
  await page.locator('#channel').fill(room);
  await page.locator('#user').fill(user);
  await page.locator('#connect').click();
  await waitForStatus(page, `connected via ${transport.label}`);
}

async function waitForStatus(page, expected) {
  try {
    await page.waitForFunction(
      (text) => document.getElementById('status').textContent === text,
      expected,
      { timeout: WAIT_MS },
    );
  } catch (e) {
    const now = await page.locator('#status').textContent().catch(() => '?');
    throw new Error(`#status never became "${expected}" (it is "${now}")\n${e.message}`);
  }
}

/** Waits for the one <li> in #log holding `text`; returns its data-id. */
async function waitForMessage(page, text) {
  const item = page.locator('#log li', { hasText: text });
  try {
    await item.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch (e) {
    const log = await page.locator('#log').innerText().catch(() => '?');
    const status = await page.locator('#status').textContent().catch(() => '?');
    throw new Error(`no "${text}" in #log (status "${status}", log ${JSON.stringify(log)})\n${e.message}`);
  }
  assert.equal(await item.count(), 1, `"${text}" shown more than once`);
  return item.getAttribute('data-id');
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  base = await startServer();
  const expected = new RegExp(`^${HTTP_SCHEME}://127\\.0\\.0\\.1:\\d+$`);
  assert.match(base, expected, `listens on 127.0.0.1 only, over ${HTTP_SCHEME}`);
  browser = await support.launchChromium();
});

after(async () => {
  // Both, even if one of them fails.
  const results = await Promise.allSettled([
    browser ? within(WAIT_MS, browser.close(), 'Chromium to close') : null,
    stopServer(),
  ]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
});

for (const transport of TRANSPORTS) {
  const name = `demo page over ${HTTP_SCHEME} receives a published message via ${transport.value}`;
  test(name, { timeout: 4 * WAIT_MS }, async () => {
    const { page, context, problems, sockets } = await openDemo();
    try {
      const room = `e2e-${transport.value}-${unique()}`;
      await connect(page, transport, room, `e2e-${transport.value}`);

      const text = `hello over ${transport.value} #${unique()}`;
      const id = await publish(room, text);
      const shown = await waitForMessage(page, text);
      assert.equal(shown, id, `data-id of the shown message vs the id the POST returned`);
      // The <li> is "<span class=id>ID</span>TEXT".
      assert.equal(await page.locator(`#log li[data-id="${id}"]`).innerText(), `${id}${text}`);
      // Still connected via this transport once the message is in: nothing
      // left over from an earlier connection (the page's own auto-connect
      // on load) has overwritten the status.
      await waitForStatus(page, `connected via ${transport.label}`);
      assert.deepEqual(problems, [], 'errors in the page');
      if (transport.value === 'websocket') {
        assert.ok(sockets.length > 0, 'the page opened no WebSocket');
        for (const url of sockets) assert.ok(url.startsWith(`${WS_SCHEME}://`), `WebSocket to ${url}`);
      }
    } finally {
      const path = join(ARTIFACTS, `${SHOT_PREFIX}${transport.value}.png`);
      await page.screenshot({ path, timeout: WAIT_MS })
        .catch(() => {});
      await context.close().catch(() => {});
    }
  });
}

test(`over ${HTTP_SCHEME}, one message reaches all four transports at once, with the same id`, { timeout: 4 * WAIT_MS }, async () => {
  const room = `e2e-all-${unique()}`;
  const pages = [];
  try {
    for (const transport of TRANSPORTS) {
      const opened = await openDemo();
      pages.push(opened);
      await connect(opened.page, transport, room, `e2e-all-${transport.value}`);
    }
    const text = `to everyone #${unique()}`;
    const id = await publish(room, text);
    const shown = await Promise.all(pages.map(({ page }) => waitForMessage(page, text)));
    assert.deepEqual(shown, TRANSPORTS.map(() => id));
    for (const { problems } of pages) assert.deepEqual(problems, [], 'errors in the page');
  } finally {
    await Promise.all(pages.map(({ context }) => context.close().catch(() => {})));
  }
});

test(`over ${HTTP_SCHEME}, "Any" connects via WebSocket and the form publishes through the client`, { timeout: 4 * WAIT_MS }, async () => {
  const { page, context, problems } = await openDemo();
  try {
    // The page connects on load with the default choice.
    assert.equal(await page.locator('#transport').inputValue(), 'auto');
    await waitForStatus(page, 'connected via WebSocket');
    const text = `typed #${unique()}`;
    await page.locator('#text').fill(text);
    await page.locator('#send button').click();
    const id = await waitForMessage(page, `guest: ${text}`);
    assert.match(id, /^[0-9a-f]+-\d+$/);
    assert.deepEqual(problems, [], 'errors in the page');
  } finally {
    await context.close().catch(() => {});
  }
});

test(`over ${HTTP_SCHEME}, the demo shows who is here (user tokens), and a restart as a gap`, { timeout: 6 * WAIT_MS }, async () => {
  const dir = support.scratch();
  const secret = support.userSecretFile(dir.dir);
  let own = await support.startServer({ args: ['--user-secret-file', secret] });
  const proxy = await startProxyFor(own.port);
  const origin = `${HTTP_SCHEME}://127.0.0.1:${proxy.port}`;
  const pages = [];
  try {
    const room = `e2e-presence-${unique()}`;
    for (const name of ['alice', 'bob']) {
      const context = await browser.newContext();
      context.setDefaultTimeout(WAIT_MS);
      const page = await context.newPage();
      pages.push({ page, context });
      await page.goto(`${origin}/`);
      await page.locator('#channel').fill(room);
      await page.locator('#token').fill(await support.mintUserToken(name, secret));
      await page.locator('#connect').click();
      await waitForStatus(page, 'connected via WebSocket');
    }
    const here = (page, expected) => page.waitForFunction(
      (text) => document.getElementById('presence').textContent === text, expected, { timeout: WAIT_MS });
    await here(pages[0].page, 'alice, bob');
    await pages[1].context.close();
    await here(pages[0].page, 'alice');
    // A new server (a new epoch) behind the proxy: the page says so.
    await own.stop();
    own = await support.startServer({ args: ['--user-secret-file', secret] });
    proxy.setTarget(own.port);
    await pages[0].page.locator('#log li.gap', { hasText: 'the server restarted' }).waitFor({ timeout: WAIT_MS });
    await waitForStatus(pages[0].page, 'connected via WebSocket');
    await pages[0].page.screenshot({ path: join(ARTIFACTS, `${SHOT_PREFIX}presence.png`), timeout: WAIT_MS }).catch(() => {});
  } finally {
    await Promise.all(pages.map(({ context }) => context.close().catch(() => {})));
    await proxy.stop();
    await own.stop();
    dir.remove();
  }
});

test('server stops cleanly on SIGTERM', { timeout: 2 * WAIT_MS }, async () => {
  await within(WAIT_MS, browser.close(), 'Chromium to close');
  browser = null;
  const { code, signal } = await stopServer();
  assert.equal(signal, null, `rtwire killed by ${signal}:\n${serverLog}`);
  assert.equal(code, 0, `rtwire exit code:\n${serverLog}`);
  assert.match(serverLog, /rtwire serve: stopped/);
});
