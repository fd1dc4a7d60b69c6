// End-to-end tests of the client module in Node, no browser: client/rtwire.js
// imported directly and connected to `rtwire serve` (or a proxy in front of
// it) by URL. The same checks as client.test.mjs (support.mjs), where no
// browser API is needed:
//
//  (a) each transport forced alone: join, publish with an ack, text and
//      binary (Uint8Array) messages from Node, with their publishers' ids;
//  (b) chaos: cuts every 2 s while Node publishes 20 messages a second
//      for 30 s, the four transports at once: every message once, in order;
//  (c) fallback to SSE behind a proxy refusing WebSocket upgrades;
//  (d) restart: gap/epoch_changed and the new server's messages, per transport;
//  (e) presence: bob's join and leave reach alice, by client.close() over a
//      WebSocket, and by a polling bob closing (gone after --presence-timeout).
//
// Node 20 has WebSocket only behind --experimental-websocket (on by default
// from Node 22): tests/e2e/run passes it. Run alone:
//   RTWIRE_BIN=target/debug/rtwire node --experimental-websocket --test tests/e2e/client-node.test.mjs
// Over https (RTWIRE_E2E_TLS_CERT set) only (a) runs; Node trusts the test CA
// through NODE_EXTRA_CA_CERTS (set by tests/e2e/run).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TLS_CERT, TRANSPORTS, HTTP_SCHEME, nodeRecorder,
  checkTransport, checkChaos, checkFallback, checkRestart, checkPresence,
} from './support.mjs';

const HTTP_ONLY = TLS_CERT ? 'the https pass runs only the per-transport checks' : false;
const WAIT_MS = 15_000;

/** A client in Node, recorded like a page's. */
async function make(origin, options) {
  const h = await nodeRecorder(origin, options);
  return { ...h, problems: [], dispose: async () => h.client.close() };
}

test('Node has a global WebSocket (Node 20: --experimental-websocket)', () => {
  assert.equal(typeof WebSocket, 'function', 'run node with --experimental-websocket');
});

for (const t of TRANSPORTS) {
  test(`(a) Node over ${HTTP_SCHEME}, ${t} alone: join, publish with ack, text and binary from Node`,
    { timeout: 4 * WAIT_MS }, () => checkTransport(make, t));
}

test('(b) Node, chaos: cuts every 2 s, 20 messages/s for 30 s, each transport alone, at once: every message once, in order',
  { skip: HTTP_ONLY, timeout: 30_000 + 6 * WAIT_MS }, async (t) => {
    // A cut breaks a WebSocket, an SSE stream and a held long poll (Node's
    // fetch does not retry it): the client must go "reconnecting". A short
    // poll is in flight for milliseconds of its second: it may miss every cut.
    const report = await checkChaos(make, { seconds: 30, cutEveryMs: 2000, mustReconnect: ['websocket', 'sse', 'long-poll'] });
    t.diagnostic(JSON.stringify(report));
  });

test('(c) Node, fallback: behind a proxy refusing upgrades the default transports end on sse',
  { skip: HTTP_ONLY, timeout: 4 * WAIT_MS }, async (t) => {
    const report = await checkFallback(make);
    t.diagnostic(JSON.stringify(report));
  });

test('(d) Node, restart: a new server behind the proxy gives gap/epoch_changed, then its messages, on each transport',
  { skip: HTTP_ONLY, timeout: 6 * WAIT_MS }, async (t) => {
    const report = await checkRestart(make);
    t.diagnostic(JSON.stringify(report));
  });

test('(e) Node, presence over a WebSocket: alice sees bob join, and leave by client.close()',
  { skip: HTTP_ONLY, timeout: 4 * WAIT_MS }, async (t) => {
    const leftAfterMs = await checkPresence(make, { hows: ['close'] });
    t.diagnostic(`bob's leaving reached alice after ${JSON.stringify(leftAfterMs)} ms`);
  });

test('(e) Node, presence of a polling client: bob on poll is present, and gone soon after client.close() (--presence-timeout 2)',
  { skip: HTTP_ONLY, timeout: 4 * WAIT_MS }, async (t) => {
    // A short poll has no connection to lose: bob leaves when he says so, or
    // when his polls stop for --presence-timeout seconds.
    const leftAfterMs = await checkPresence(make, {
      hows: ['close'], bobTransports: ['poll'], args: ['--presence-timeout', '2'], leftWithinMs: 6000,
    });
    t.diagnostic(`bob's leaving reached alice after ${JSON.stringify(leftAfterMs)} ms`);
  });
