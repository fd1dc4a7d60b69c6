// A TCP proxy in front of `rtwire serve`, for the client tests: it can cut
// every open connection at once (on demand, or every `cutEveryMs`), move to
// another upstream port (a restarted server), and refuse WebSocket upgrades
// the way a proxy that does not pass them does (502).
//
//   const proxy = await startProxy({ targetPort, cutEveryMs, refuseUpgrade });
//   proxy.port          // where clients connect (127.0.0.1)
//   proxy.setTarget(p)  // new connections go to port p; open ones stay
//   proxy.cutAll()      // destroys every client and upstream socket now
//   proxy.cutEvery(ms)  // from now on, cutAll() every ms (0: stop cutting)
//   proxy.cuts          // cuts that destroyed at least one connection
//   proxy.socketsCut    // client connections destroyed by cuts, in all
//   proxy.refused       // upgrades answered 502
//   await proxy.stop()
//
// Bytes are forwarded untouched, so it works in front of TLS too (but can
// only recognise an upgrade in plain HTTP). Only the head at the start of a
// connection is sniffed: browsers and undici open a WebSocket on a
// connection of its own, so a connection that starts with a plain request
// (and is kept alive for more) only ever carries plain requests.

import net from 'node:net';

/** The most a request head may take before we stop looking for its end. */
const MAX_HEAD = 16 * 1024;

const UPGRADE_WS = /^upgrade:[ \t]*websocket[ \t]*$/im;

export function startProxy({ targetPort, cutEveryMs, refuseUpgrade = false } = {}) {
  if (!targetPort) throw new Error('startProxy: targetPort is required');
  let target = targetPort;
  /** Every open socket, client side and upstream side, to cut them all at once. */
  const open = new Set();
  /** The client-side ones among them. */
  const clientSockets = new WeakSet();
  const stats = { cuts: 0, socketsCut: 0, refused: 0, connections: 0 };

  const track = (socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    // A cut or a reset is expected here; never let it crash the test.
    socket.on('error', () => {});
  };

  const server = net.createServer((client) => {
    stats.connections += 1;
    clientSockets.add(client);
    track(client);
    client.setNoDelay(true);
    let head = Buffer.alloc(0);

    const forward = () => {
      client.off('data', sniff);
      client.pause();
      const upstream = net.connect({ host: '127.0.0.1', port: target });
      track(upstream);
      upstream.setNoDelay(true);
      upstream.once('connect', () => {
        upstream.write(head);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      // Either side going away takes the other with it (a refused upstream
      // too: the client sees its connection reset, as with a dead server).
      upstream.once('close', () => client.destroy());
      client.once('close', () => upstream.destroy());
    };

    const sniff = (chunk) => {
      head = Buffer.concat([head, chunk]);
      // Only a proxy that refuses upgrades needs to see the head; TLS (its
      // first byte 0x16, never a letter) is passed through untouched.
      if (!refuseUpgrade || !/^[A-Z]/.test(head.toString('latin1', 0, 1))) return forward();
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < MAX_HEAD) return; // the head is not all here yet
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1');
      if (UPGRADE_WS.test(text)) {
        client.off('data', sniff);
        stats.refused += 1;
        const body = 'rtwire e2e proxy: WebSocket upgrades are not passed\n';
        client.end(
          'HTTP/1.1 502 Bad Gateway\r\n' +
            'Content-Type: text/plain; charset=utf-8\r\n' +
            `Content-Length: ${Buffer.byteLength(body)}\r\n` +
            'Connection: close\r\n\r\n' +
            body,
        );
        return;
      }
      forward();
    };
    client.on('data', sniff);
  });

  const cutAll = () => {
    let clients = 0;
    for (const socket of [...open]) {
      if (clientSockets.has(socket)) clients += 1;
      socket.destroy();
    }
    if (clients > 0) {
      stats.cuts += 1;
      stats.socketsCut += clients;
    }
    return clients;
  };

  let timer = null;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      if (cutEveryMs) timer = setInterval(cutAll, cutEveryMs);
      resolve({
        port,
        setTarget(p) {
          target = p;
        },
        cutAll,
        cutEvery(ms) {
          if (timer) clearInterval(timer);
          timer = ms ? setInterval(cutAll, ms) : null;
        },
        get cuts() {
          return stats.cuts;
        },
        get socketsCut() {
          return stats.socketsCut;
        },
        get refused() {
          return stats.refused;
        },
        get connections() {
          return stats.connections;
        },
        stop() {
          if (timer) clearInterval(timer);
          timer = null;
          for (const socket of [...open]) socket.destroy();
          return new Promise((ok) => server.close(() => ok()));
        },
      });
    });
  });
}
