// Shared helpers of the client tests (client.test.mjs in Chromium,
// client-node.test.mjs in Node): start and stop `rtwire serve`, mint user
// tokens, publish from Node, launch Chromium, open a page on an origin, and
// bounded waits. Every wait is bounded; nothing here sleeps to let a race
// settle.
//
// Over https (RTWIRE_E2E_TLS_CERT and RTWIRE_E2E_TLS_KEY set, as by
// tests/e2e/run): the server gets --tls-cert/--tls-key, and Chromium is told
// to accept exactly that certificate's key (see demo.test.mjs for why).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProxy } from './proxy.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');
export const BIN = resolve(ROOT, process.env.RTWIRE_BIN || 'target/debug/rtwire');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = join(HERE, 'artifacts');
/** The bound of every single wait (a start, a message, an event). */
export const WAIT_MS = 15_000;

export const TLS_CERT = process.env.RTWIRE_E2E_TLS_CERT;
export const TLS_KEY = process.env.RTWIRE_E2E_TLS_KEY;
if (Boolean(TLS_CERT) !== Boolean(TLS_KEY)) {
  throw new Error('set both RTWIRE_E2E_TLS_CERT and RTWIRE_E2E_TLS_KEY, or neither');
}
export const HTTP_SCHEME = TLS_CERT ? 'https' : 'http';

export const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'poll'];

export const unique = () => randomBytes(4).toString('hex');

/** Rejects after `ms` with a message naming what was awaited. */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Checks `predicate` every `everyMs` until it returns something truthy
 * (resolved with it) or `ms` pass (rejected with `what` and, if given,
 * `describe()`: the state at the deadline).
 */
export async function until(predicate, { ms = WAIT_MS, everyMs = 25, what = 'a condition', describe } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) {
      const now = describe ? `\n${await describe()}` : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${now}`);
    }
    await new Promise((ok) => setTimeout(ok, everyMs));
  }
}

/**
 * Starts `rtwire serve --port PORT` (0: a free one) with `args`, and TLS in
 * the https run. Resolves with { base, port, epoch, log(), stop(), exit }.
 */
export async function startServer({ args = [], port = 0 } = {}) {
  const all = ['serve', '--port', String(port), ...args];
  if (TLS_CERT) all.push('--tls-cert', TLS_CERT, '--tls-key', TLS_KEY);
  const child = spawn(BIN, all, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exit = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  const listening = new Promise((ok, fail) => {
    child.once('error', (e) => fail(new Error(`cannot start ${BIN}: ${e.message}`)));
    // The startup line is printed as it is, for scripts; read both streams.
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        log += chunk;
        const m = log.match(/rtwire serve: listening on (https?:\/\/\S+) \(epoch ([0-9a-f]+)\)/);
        if (m) ok({ base: m[1].replace(/\/$/, ''), epoch: m[2] });
      });
    }
    exit.then(({ code, signal }) =>
      fail(new Error(`rtwire exited early (code ${code}, signal ${signal}):\n${log}`)));
  });
  const { base, epoch } = await within(WAIT_MS, listening, `"listening on" from ${BIN} ${all.join(' ')}`);
  const server = {
    base,
    port: Number(new URL(base).port),
    epoch,
    exit,
    log: () => log,
    /** SIGTERM, then SIGKILL if it is still there after the wait. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exit;
      child.kill('SIGTERM');
      try {
        return await within(WAIT_MS, exit, 'rtwire to exit after SIGTERM');
      } catch (e) {
        child.kill('SIGKILL');
        await exit;
        throw e;
      }
    },
  };
  return server;
}

/** A directory of its own for a test's files; remove() when done. */
export function scratch() {
  const dir = mkdtempSync(join(tmpdir(), 'rtwire-e2e-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a fresh user secret (64 hex characters) into `dir`; returns its path. */
export function userSecretFile(dir) {
  const path = join(dir, 'user.secret');
  writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  return path;
}

/** `rtwire token NAME --user-secret-file F`: the token it prints. */
export function mintUserToken(name, secretFile) {
  return new Promise((ok, fail) => {
    execFile(BIN, ['token', name, '--user-secret-file', secretFile], { cwd: ROOT, timeout: WAIT_MS },
      (error, stdout, stderr) => {
        if (error) return fail(new Error(`rtwire token ${name}: ${error.message}\n${stderr}`));
        const token = stdout.trim();
        if (!token || /\s/.test(token)) return fail(new Error(`rtwire token ${name} printed ${JSON.stringify(stdout)}`));
        ok(token);
      });
  });
}

/**
 * POSTs `body` (a string, or bytes) to the channel and returns the id the
 * server gave it.
 */
export async function publish(base, channel, body, { token } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (typeof body !== 'string') headers['content-type'] = 'application/octet-stream';
  const r = await fetch(`${base}/channels/${encodeURIComponent(channel)}`, {
    method: 'POST',
    body,
    headers,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await r.text();
  assert.equal(r.status, 202, `POST /channels/${channel}: ${r.status} ${text}`);
  const { id } = JSON.parse(text);
  assert.match(id, /^[0-9a-f]+-\d+$/, `POST /channels/${channel} answered ${text}`);
  return id;
}

/** GET `path` from the server and parse the JSON it answers (200 expected). */
export async function getJson(base, path) {
  const r = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(WAIT_MS) });
  const text = await r.text();
  assert.equal(r.status, 200, `GET ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Publishes `count` messages to `channel`, one every `everyMs` on a fixed
 * schedule (each POST awaited before the next, so the ids come back in the
 * order the server gave them). Resolves with the ids and the payloads, in order.
 */
export async function publishSchedule(base, channel, { count, everyMs, payload = (i) => `m${i}` }) {
  const ids = [];
  const payloads = [];
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * everyMs;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
    const body = payload(i);
    ids.push(await publish(base, channel, body));
    payloads.push(body);
  }
  return { ids, payloads };
}

/** The first index at which two lists differ, for failure messages. */
export function firstDifference(a, b) {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Asserts `seen` is exactly `expected` (ids), with a readable message. */
export function assertSameIds(seen, expected, what) {
  const at = firstDifference(seen, expected);
  if (at < 0) return;
  const dupes = seen.filter((id, i) => seen.indexOf(id) !== i);
  const missing = expected.filter((id) => !seen.includes(id));
  const extra = seen.filter((id) => !expected.includes(id));
  assert.fail(
    `${what}: ${seen.length} ids seen, ${expected.length} expected; first difference at #${at} ` +
      `(seen ${seen[at]}, expected ${expected[at]}); ` +
      `duplicates ${JSON.stringify(dupes.slice(0, 10))}, missing ${JSON.stringify(missing.slice(0, 10))}` +
      `${missing.length > 10 ? ` (+${missing.length - 10})` : ''}, ` +
      `not published ${JSON.stringify(extra.slice(0, 10))}; ` +
      `around it: seen ${JSON.stringify(seen.slice(Math.max(0, at - 2), at + 3))}, ` +
      `expected ${JSON.stringify(expected.slice(Math.max(0, at - 2), at + 3))}`,
  );
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of the certificate, as Chromium pins keys. */
function spkiPin(certPem) {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Headless Chromium through playwright-core, with the flags of demo.test.mjs. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const tlsArgs = TLS_CERT ? [`--ignore-certificate-errors-spki-list=${spkiPin(readFileSync(TLS_CERT))}`] : [];
  return within(WAIT_MS, chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: WAIT_MS,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...tlsArgs,
    ],
  }), `Chromium (${CHROMIUM}) to start`);
}

/**
 * A page in a context of its own, on `origin` (`/healthz`, a page of the
 * server's origin that loads nothing). `problems`: uncaught exceptions and
 * unhandled rejections in the page; `consoleErrors`: every console error
 * (failed WebSockets among them, expected where a proxy cuts), for failure
 * messages.
 */
export async function openPage(browser, origin) {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    consoleErrors.push(m.text());
    if (/uncaught/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const response = await page.goto(`${origin}/healthz`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `GET ${origin}/healthz`);
  return { page, context, problems, consoleErrors };
}

/**
 * Connects a client and records what it hands the application. Runs as it
 * is in Node and, through its source (see `pageRecorder`), in a page: it
 * must not use anything from this module. Returns
 *   { client, rt, join(channel, opts), publish(channel, data, opts), snapshot() }
 * with rt = { messages: [{ channel, id, kind, text, bytes }], states:
 * [{ state, transport }], gaps: [...], presence: [{ channel, joined, left }],
 * joinErrors: [...] }. `kind` is "string", "Uint8Array" or what else `data`
 * was; `bytes` the bytes of a Uint8Array, as an array of numbers.
 */
export function recorder(connect, base, options) {
  const rt = { messages: [], states: [], gaps: [], presence: [], joinErrors: [] };
  const kindOf = (data) => (typeof data === 'string'
    ? 'string'
    : data instanceof Uint8Array ? 'Uint8Array' : Object.prototype.toString.call(data));
  const client = connect(base, options);
  client.on('state', (e) => rt.states.push({ state: e.state, transport: e.transport }));
  client.on('gap', (e) => rt.gaps.push({ channel: e.channel, resume: e.resume, firstAvailable: e.firstAvailable ?? null }));
  client.on('presence', (e) => rt.presence.push({
    channel: e.channel, joined: [...(e.joined ?? [])], left: [...(e.left ?? [])],
  }));
  const onMessage = (m) => {
    const kind = kindOf(m.data);
    rt.messages.push({
      channel: m.channel,
      id: m.id,
      kind,
      text: kind === 'string' ? m.data : null,
      bytes: kind === 'Uint8Array' ? Array.from(m.data) : null,
    });
  };
  return {
    client,
    rt,
    join: (channel, opts) => client.join(channel, onMessage, opts),
    /** What the test reads: plain data, the same in Node and from a page. */
    snapshot: () => JSON.parse(JSON.stringify({
      ...rt, state: client.state ?? null, transport: client.transport ?? null,
    })),
  };
}

/**
 * The recorder in a page: imports /rtwire.js from the page's origin and
 * connects with `options` (baseUrl "": the page's origin), as `window.h`.
 * The other helpers below reach it through `page.evaluate`.
 */
export async function pageRecorder(page, options) {
  await within(WAIT_MS, page.evaluate(async ([source, options]) => {
    const { connect } = await import('/rtwire.js');
    // eslint-disable-next-line no-eval
    const make = (0, eval)(`(${source})`);
    window.h = make(connect, '', options);
  }, [recorder.toString(), options]), 'import /rtwire.js and connect in the page');
  return {
    join: (channel, opts = {}) =>
      within(WAIT_MS, page.evaluate(([c, o]) => window.h.join(c, o).then(() => true), [channel, opts]),
        `join ${channel} in the page`),
    publish: (channel, data, opts = {}) =>
      within(WAIT_MS, page.evaluate(([c, d, o]) => window.h.client.publish(c, d, o)
        .then((ack) => ({ ...ack }), (e) => ({ error: String(e && e.message) })), [channel, data, opts]),
      `publish to ${channel} from the page`),
    presence: (channel) =>
      within(WAIT_MS, page.evaluate((c) => window.h.client.presence(c), channel), `presence of ${channel} in the page`),
    close: () => within(WAIT_MS, page.evaluate(() => { window.h.client.close(); return true; }), 'client.close() in the page'),
    snapshot: () => page.evaluate(() => window.h.snapshot()),
  };
}

/**
 * The same interface over a recorder in Node (client/rtwire.js imported
 * directly; baseUrl the server's or the proxy's).
 */
export async function nodeRecorder(base, options) {
  const { connect } = await import('../../client/rtwire.js');
  const h = recorder(connect, base, options);
  return {
    client: h.client,
    join: (channel, opts = {}) => within(WAIT_MS, h.join(channel, opts).then(() => true), `join ${channel}`),
    publish: (channel, data, opts = {}) => within(WAIT_MS, h.client.publish(channel, data, opts)
      .then((ack) => ({ ...ack }), (e) => ({ error: String(e && e.message) })), `publish to ${channel}`),
    presence: (channel) => within(WAIT_MS, h.client.presence(channel), `presence of ${channel}`),
    close: async () => { h.client.close(); return true; },
    snapshot: async () => h.snapshot(),
  };
}

/** A short account of a recorder's state, for failure messages. */
export function describeSnapshot(s, channel) {
  const msgs = s.messages.filter((m) => channel === undefined || m.channel === channel);
  const states = s.states.map((e) => `${e.state}/${e.transport}`);
  return `state ${s.state}/${s.transport}; ${msgs.length} messages` +
    (msgs.length ? ` (first ${msgs[0].id}, last ${msgs[msgs.length - 1].id})` : '') +
    `; states [${states.slice(-20).join(', ')}]${states.length > 20 ? ` (last 20 of ${states.length})` : ''}` +
    `; gaps ${JSON.stringify(s.gaps)}; presence ${JSON.stringify(s.presence.slice(-10))}`;
}

/** Waits until the recorder holds at least `count` messages of `channel`; returns them. */
export function waitForMessages(h, channel, count, { ms = WAIT_MS, what } = {}) {
  let last;
  return until(async () => {
    last = await h.snapshot();
    const msgs = last.messages.filter((m) => m.channel === channel);
    return msgs.length >= count ? msgs : null;
  }, {
    ms,
    what: what ?? `${count} messages on ${channel}`,
    describe: () => describeSnapshot(last, channel),
  });
}

/** Waits until some recorded event of `list` ("states", "gaps", "presence") satisfies `match`. */
export function waitForEvent(h, list, match, { ms = WAIT_MS, what } = {}) {
  let last;
  return until(async () => {
    last = await h.snapshot();
    return last[list].find(match) ?? null;
  }, { ms, what: what ?? `a ${list} event`, describe: () => describeSnapshot(last) });
}

// ---------------------------------------------------------------------------
// The checks, shared by client.test.mjs (the client in Chromium pages) and
// client-node.test.mjs (the client in Node). `make(origin, options)` resolves
// with a recorder (see pageRecorder/nodeRecorder) plus `dispose()` (closes
// the page, or the client in Node) and `problems` (errors in the page).
// ---------------------------------------------------------------------------

export const ID_RE = /^[0-9a-f]+-\d+$/;

/** The transports a recorder was on while open, in order, without repeats. */
function openTransports(snapshot) {
  const seen = [];
  for (const e of snapshot.states) {
    if (e.state === 'open' && seen[seen.length - 1] !== e.transport) seen.push(e.transport);
  }
  return seen;
}

/** Non-UTF-8 bytes (a lone 0xff, a bad continuation, a truncated sequence), a NUL, CR LF. */
export const BINARY_PAYLOAD = Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0d, 0x0a, 0x7f, 0xf0, 0x9f, 0x98]);

/**
 * (a) One transport forced alone: join; publish from the client (the ack's
 * id); a text and a binary message published from Node; then a last one
 * from Node, so that a duplicate of the first three would show. Each arrives
 * once, in order, with the id its publisher was given, as a string or (the
 * binary one) a Uint8Array of the same bytes; the client stayed on `t`.
 */
export async function checkTransport(make, t) {
  const server = await startServer();
  const h = await make(server.base, { transports: [t] });
  try {
    const channel = `a-${t}-${unique()}`;
    assert.equal(await h.join(channel), true);
    const ownText = `from the client via ${t}: é ✓ 😀 ${unique()}`;
    const ack = await h.publish(channel, ownText);
    assert.ok(!ack.error, `client.publish rejected: ${ack.error}`);
    assert.match(String(ack.id), ID_RE, `client.publish resolved with ${JSON.stringify(ack)}`);
    const nodeText = `from Node: "quoted" \\ tab\there ${unique()}`;
    const nodeId = await publish(server.base, channel, nodeText);
    const binaryId = await publish(server.base, channel, BINARY_PAYLOAD);
    const lastId = await publish(server.base, channel, 'last');
    const got = await waitForMessages(h, channel, 4, { what: `4 messages via ${t}` });
    assertSameIds(got.map((m) => m.id), [ack.id, nodeId, binaryId, lastId], `ids received via ${t}`);
    assert.deepEqual(got[0], { channel, id: ack.id, kind: 'string', text: ownText, bytes: null }, 'the client\'s own message');
    assert.deepEqual(got[1], { channel, id: nodeId, kind: 'string', text: nodeText, bytes: null }, 'the message from Node');
    assert.deepEqual(got[2], { channel, id: binaryId, kind: 'Uint8Array', text: null, bytes: Array.from(BINARY_PAYLOAD) },
      'the binary message from Node');
    assert.equal(got[3].text, 'last');
    const s = await h.snapshot();
    assert.equal(s.transport, t, 'client.transport');
    assert.equal(s.state, 'open', 'client.state');
    assert.deepEqual(openTransports(s), [t], `the transports the client was open on (states ${JSON.stringify(s.states)})`);
    assert.deepEqual(h.problems, [], 'errors in the page');
  } finally {
    await h.dispose().catch(() => {});
    await server.stop();
  }
}

/**
 * (b) Chaos: a proxy cuts every connection every `cutEveryMs` while Node
 * publishes `ratePerSecond` messages a second for `seconds` straight to the
 * server, on one channel per transport; each client (forced onto one
 * transport, through the proxy) gets every message once, in order. The
 * proxy must really have cut, and (`mustReconnect`: the transports whose
 * connections a cut always breaks) the client must have gone `reconnecting`.
 * Resolves with what it saw, per transport, for the test's own checks.
 */
export async function checkChaos(make, {
  transports = TRANSPORTS, seconds = 30, ratePerSecond = 20, cutEveryMs = 3000, mustReconnect = transports,
} = {}) {
  const server = await startServer();
  const proxy = await startProxy({ targetPort: server.port });
  const origin = `${HTTP_SCHEME}://127.0.0.1:${proxy.port}`;
  const runs = [];
  try {
    for (const t of transports) {
      const h = await make(origin, { transports: [t] });
      const channel = `chaos-${t}-${unique()}`;
      runs.push({ t, h, channel });
      assert.equal(await h.join(channel), true);
    }
    // Cutting starts once everyone is in: a cut during the page load is not the point.
    proxy.cutEvery(cutEveryMs);
    const count = seconds * ratePerSecond;
    const published = await Promise.all(runs.map(({ t, channel }) => publishSchedule(server.base, channel, {
      count, everyMs: 1000 / ratePerSecond, payload: (i) => `${t} #${i}`,
    })));
    const cuts = proxy.cuts;
    proxy.cutEvery(0);
    const report = {};
    await Promise.all(runs.map(async ({ t, h, channel }, i) => {
      const { ids, payloads } = published[i];
      // Poll-based transports may be a poll interval and a reconnect delay behind.
      const got = await waitForMessages(h, channel, ids.length, { what: `all ${ids.length} messages via ${t} after the chaos` });
      assertSameIds(got.map((m) => m.id), ids, `chaos via ${t}`);
      assert.deepEqual(got.map((m) => m.text), payloads, `payloads via ${t}`);
      const s = await h.snapshot();
      report[t] = {
        received: got.length,
        reconnecting: s.states.filter((e) => e.state === 'reconnecting').length,
        transports: openTransports(s),
      };
      assert.deepEqual(report[t].transports, [t], `chaos via ${t}: the transports the client was open on`);
      if (mustReconnect.includes(t)) {
        assert.ok(report[t].reconnecting > 0, `chaos via ${t}: no "reconnecting" state event (${describeSnapshot(s)})`);
      }
      assert.deepEqual(h.problems, [], `errors in the page (${t})`);
    }));
    assert.ok(cuts >= Math.min(5, Math.floor((seconds * 1000) / cutEveryMs) - 1),
      `the proxy cut ${cuts} times in ${seconds} s (every ${cutEveryMs} ms)`);
    report.cuts = cuts;
    report.socketsCut = proxy.socketsCut;
    return report;
  } finally {
    await Promise.all(runs.map(({ h }) => h.dispose().catch(() => {})));
    await proxy.stop();
    await server.stop();
  }
}

/**
 * (c) Fallback: a proxy answers WebSocket upgrades 502; a client with the
 * default transports ends on SSE (client.transport and a state event), and
 * gets every message of a burst published from Node.
 */
export async function checkFallback(make, { burst = 10 } = {}) {
  const server = await startServer();
  const proxy = await startProxy({ targetPort: server.port, refuseUpgrade: true });
  const h = await make(`${HTTP_SCHEME}://127.0.0.1:${proxy.port}`, {});
  try {
    const channel = `fallback-${unique()}`;
    assert.equal(await h.join(channel), true);
    await waitForEvent(h, 'states', (e) => e.state === 'open' && e.transport === 'sse',
      { what: 'a state event open/sse' });
    const ids = [];
    for (let i = 0; i < burst; i++) ids.push(await publish(server.base, channel, `burst #${i}`));
    const got = await waitForMessages(h, channel, ids.length);
    assertSameIds(got.map((m) => m.id), ids, 'the burst after falling back');
    const s = await h.snapshot();
    assert.equal(s.transport, 'sse', `client.transport (${describeSnapshot(s)})`);
    assert.equal(s.state, 'open', 'client.state');
    assert.ok(proxy.refused >= 1, `the client never tried a WebSocket (${proxy.refused} upgrades refused)`);
    assert.ok(!openTransports(s).includes('websocket'), `open on a WebSocket through a proxy that refuses them: ${JSON.stringify(s.states)}`);
    assert.deepEqual(h.problems, [], 'errors in the page');
    return { refused: proxy.refused, states: s.states };
  } finally {
    await h.dispose().catch(() => {});
    await proxy.stop();
    await server.stop();
  }
}

/**
 * (d) Restart: clients (one per transport, through a proxy) joined on a
 * channel each; a few messages; the server is stopped (SIGTERM), a new one
 * started on another port (a new epoch) and a message published there
 * before the proxy is pointed at it. Each client reports a `gap` with
 * resume `epoch_changed` for its channel, and then gets the new server's
 * messages: the one from before it came back (the new epoch's history) and
 * those published after, in order, each once.
 */
export async function checkRestart(make, { transports = TRANSPORTS, before = 3, after = 2 } = {}) {
  let server = await startServer();
  const proxy = await startProxy({ targetPort: server.port });
  const origin = `${HTTP_SCHEME}://127.0.0.1:${proxy.port}`;
  const runs = [];
  try {
    for (const t of transports) {
      const h = await make(origin, { transports: [t] });
      const channel = `restart-${t}-${unique()}`;
      runs.push({ t, h, channel, ids: [] });
      assert.equal(await h.join(channel), true);
    }
    for (const run of runs) {
      for (let i = 0; i < before; i++) run.ids.push(await publish(server.base, run.channel, `old #${i}`));
    }
    await Promise.all(runs.map(async (run) => {
      const got = await waitForMessages(run.h, run.channel, before, { what: `the first server's messages via ${run.t}` });
      assertSameIds(got.map((m) => m.id), run.ids, `before the restart, via ${run.t}`);
    }));
    const old = server;
    const { code, signal } = await old.stop();
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the first server's exit:\n${old.log()}`);
    server = await startServer();
    assert.notEqual(server.epoch, old.epoch, 'a new epoch after the restart');
    for (const run of runs) run.ids.push(await publish(server.base, run.channel, 'new, before the client is back'));
    proxy.setTarget(server.port);
    await Promise.all(runs.map(async (run) => {
      const gap = await waitForEvent(run.h, 'gaps', (g) => g.channel === run.channel,
        { what: `a gap event for ${run.channel} via ${run.t}` });
      assert.equal(gap.resume, 'epoch_changed', `the gap event via ${run.t}: ${JSON.stringify(gap)}`);
    }));
    for (const run of runs) {
      for (let i = 0; i < after; i++) run.ids.push(await publish(server.base, run.channel, `new #${i}`));
    }
    const report = {};
    await Promise.all(runs.map(async (run) => {
      const got = await waitForMessages(run.h, run.channel, run.ids.length,
        { what: `the new server's messages via ${run.t}` });
      assertSameIds(got.map((m) => m.id), run.ids, `across the restart, via ${run.t}`);
      assert.ok(got.slice(before).every((m) => m.id.startsWith(`${server.epoch}-`)),
        `the new messages carry the new epoch ${server.epoch}: ${JSON.stringify(got.map((m) => m.id))}`);
      const s = await run.h.snapshot();
      assert.equal(s.gaps.filter((g) => g.channel === run.channel).length, 1, `one gap event via ${run.t}: ${JSON.stringify(s.gaps)}`);
      assert.equal(s.state, 'open', `client.state via ${run.t} after the restart`);
      report[run.t] = { states: s.states.map((e) => e.state), gap: s.gaps[0] };
      assert.deepEqual(run.h.problems, [], `errors in the page (${run.t})`);
    }));
    return report;
  } finally {
    await Promise.all(runs.map(({ h }) => h.dispose().catch(() => {})));
    await proxy.stop();
    await server.stop();
  }
}

/**
 * (e) Presence: a server with identities; alice and bob (user tokens) join
 * `room`. alice sees a presence event with bob joined, and
 * client.presence('room') is ['alice', 'bob'], as is GET
 * /channels/room/presence. Then bob leaves: `how` is "close"
 * (client.close()) or "dispose" (the page is closed; in Node: the same as
 * close). alice gets a presence event with bob left within `leftWithinMs`,
 * and the server's list agrees. One round per entry of `hows` (bob comes
 * back as a new client each time, on `bobTransports` if given). Resolves
 * with how long each "left" took to reach alice, in ms.
 */
export async function checkPresence(make, { hows = ['close', 'dispose'], bobTransports, args = [], leftWithinMs = 5000 } = {}) {
  const dir = scratch();
  const secret = userSecretFile(dir.dir);
  const server = await startServer({ args: ['--user-secret-file', secret, ...args] });
  const [aliceToken, bobToken] = await Promise.all([mintUserToken('alice', secret), mintUserToken('bob', secret)]);
  const alice = await make(server.base, { user: aliceToken });
  const bobs = [];
  const members = async () => {
    const body = await getJson(server.base, '/channels/room/presence');
    assert.equal(body.channel, 'room', `GET /channels/room/presence: ${JSON.stringify(body)}`);
    return body.members;
  };
  try {
    assert.equal(await alice.join('room'), true);
    await until(async () => (await members()).includes('alice'), { what: 'alice in GET /channels/room/presence' });
    for (const [round, how] of hows.entries()) {
      const bob = await make(server.base, { user: bobToken, ...(bobTransports ? { transports: bobTransports } : {}) });
      bobs.push(bob);
      assert.equal(await bob.join('room'), true);
      const joins = (s) => s.presence.filter((e) => e.channel === 'room' && e.joined.includes('bob')).length;
      await until(async () => joins(await alice.snapshot()) > round, {
        what: `alice: a presence event with bob joined (round ${round + 1})`,
        describe: async () => describeSnapshot(await alice.snapshot()),
      });
      assert.deepEqual(await alice.presence('room'), ['alice', 'bob'], "alice: client.presence('room')");
      assert.deepEqual(await members(), ['alice', 'bob'], 'GET /channels/room/presence with both in');
      const t0 = Date.now();
      if (how === 'close') await bob.close();
      else await bob.dispose();
      const lefts = (s) => s.presence.filter((e) => e.channel === 'room' && e.left.includes('bob')).length;
      await until(async () => lefts(await alice.snapshot()) > round, {
        ms: leftWithinMs,
        what: `alice: a presence event with bob left after bob's ${how === 'close' ? 'client.close()' : 'page closed'}`,
        describe: async () => describeSnapshot(await alice.snapshot()),
      });
      const leftAfterMs = Date.now() - t0;
      const s = await alice.snapshot();
      const left = s.presence.filter((e) => e.channel === 'room' && e.left.includes('bob')).at(-1);
      assert.deepEqual(left.left, ['bob'], `the left event: ${JSON.stringify(left)}`);
      assert.deepEqual(await members(), ['alice'], 'GET /channels/room/presence after bob left');
      assert.deepEqual(await alice.presence('room'), ['alice'], "alice: client.presence('room') after bob left");
      bob.leftAfterMs = leftAfterMs;
    }
    assert.deepEqual(alice.problems, [], 'errors in alice\'s page');
    return bobs.map((b) => b.leftAfterMs);
  } finally {
    await Promise.all([alice, ...bobs].map((h) => h.dispose().catch(() => {})));
    await server.stop();
    dir.remove();
  }
}
