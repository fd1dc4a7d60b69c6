// rtwire.js: one client for `rtwire serve`'s four transports (WebSocket,
// Server-Sent Events, long polling, short polling), with reconnect, fallback,
// exact resume, acknowledged publishes and presence. No dependencies, no
// build step: an ES module for browsers and for Node (>= 22, or 20 with
// --experimental-websocket). Types: rtwire.d.ts beside it.
//
//   import { connect } from "/rtwire.js";
//   const client = connect("", { user: userToken });
//   await client.join("room", ({ id, data }) => console.log(id, data));
//   const { id } = await client.publish("room", "hi");
//
// How it keeps every message once and in order: it remembers, per channel,
// the last id it handed the application (or, before any, where the server
// said the subscription started) and joins again after it on every new
// connection, whatever the transport. Ids are EPOCH-SEQ: within an epoch a
// smaller or equal SEQ is a duplicate and is dropped; a new epoch (a server
// restarted without shared history) comes with a "gap" event.

const TRANSPORTS = ["websocket", "sse", "long-poll", "poll"];

const DEFAULTS = {
  transports: TRANSPORTS,
  token: undefined,
  user: undefined,
  publishToken: undefined,
  reconnect: { minDelayMs: 250, maxDelayMs: 5000 },
  pollIntervalMs: 1000,
  // The server's SSE heartbeat (15 s by default): a connection silent for
  // twice this is dead.
  heartbeatMs: 15000,
  upgradeRetryMs: 60000,
  presenceIntervalMs: 3000,
  requestTimeoutMs: 15000,
};

/** Long polls are held this long by the server (its maximum is higher). */
const LONG_POLL_S = 25;
/** Failures in a row on a transport that once worked before trying the next. */
const STUBBORN_FAILURES = 5;
/** How often the liveness checks run (a background tab may run them later). */
const TICK_MS = 1000;

/** An error the server or the connection gave: `status` is the HTTP status, if any. */
export class RtwireError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "RtwireError";
    this.status = status;
  }
}

/** Connects to the rtwire server at `baseUrl` ("" for the page's origin). */
export function connect(baseUrl, options = {}) {
  return new Client(baseUrl, options);
}

// ----- ids and payloads -----

function parseId(id) {
  const dash = typeof id === "string" ? id.lastIndexOf("-") : -1;
  if (dash <= 0) return null;
  return { epoch: id.slice(0, dash), seq: Number(id.slice(dash + 1)) };
}

/** Whether `id` comes after `last` (null: nothing yet); another epoch always does. */
function isAfter(id, last) {
  if (last == null) return true;
  const a = parseId(id);
  const b = parseId(last);
  if (!a || !b || a.epoch !== b.epoch) return true;
  return a.seq > b.seq;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A payload as the application gets it: a string if it is UTF-8, else bytes. */
function fromBytes(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    return bytes;
  }
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** A message's `data`/`data_b64` fields (a /ws delivery, a poll item). */
function payload(item) {
  return item.data_b64 != null ? fromBytes(fromBase64(item.data_b64)) : item.data;
}

function delay(minMs, maxMs, attempt) {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// ----- the client -----

class Client {
  constructor(baseUrl, options) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...DEFAULTS, ...given, reconnect: { ...DEFAULTS.reconnect, ...given.reconnect } };
    const unknown = this.options.transports.filter((t) => !TRANSPORTS.includes(t));
    if (unknown.length || this.options.transports.length === 0) {
      throw new RtwireError(`transports: use some of ${TRANSPORTS.join(", ")} (not ${unknown.join(", ")})`);
    }
    this.base = resolveBase(baseUrl);
    this.channels = new Map();
    this.listeners = new Map();
    this._state = "connecting";
    this.index = 0;
    this.opened = new Set();
    this.failures = 0;
    this.wrapped = 0;
    this.probes = 0;
    this.session = null;
    this.retryTimer = null;
    this.upgradeTimer = null;
    this.tick = setInterval(() => this.check(), TICK_MS);
    this.onWake = () => this.wake();
    this.onLeavePage = () => {
      if (this.session?.leases) this.releasePresence();
    };
    if (typeof addEventListener === "function") {
      addEventListener("online", this.onWake);
      addEventListener("pagehide", this.onLeavePage);
      globalThis.document?.addEventListener?.("visibilitychange", this.onWake);
    }
    // Listeners are added after connect() returns: tell them on the next turn.
    queueMicrotask(() => {
      if (this._state === "connecting") this.emit("state", { state: "connecting", transport: this.transport });
    });
    this.start();
  }

  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state() {
    return this._state;
  }

  /** The transport in use or being tried. */
  get transport() {
    return this.options.transports[this.index];
  }

  /** Calls `fn(event)` on each `name` event; returns a function that stops it. */
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    this.listeners.get(name)?.delete(fn);
  }

  emit(name, event) {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        fn(event);
      } catch (e) {
        // One listener's bug must not stop delivery to the others.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  setState(state) {
    if (this._state === state && state !== "open") return;
    this._state = state;
    this.emit("state", { state, transport: this.transport });
  }

  /** Joins `channel`; resolves once the server has subscribed it. */
  join(channel, onMessage, { since } = {}) {
    if (this._state === "closed") return Promise.reject(new RtwireError("the client is closed"));
    if (this.channels.has(channel)) return Promise.reject(new RtwireError(`already joined ${channel}`));
    if (typeof onMessage !== "function") return Promise.reject(new RtwireError("join: onMessage must be a function"));
    return new Promise((resolve, reject) => {
      const chan = {
        name: channel,
        onMessage,
        last: since ?? null,
        confirmed: false,
        waiter: { resolve, reject },
        holds: 0,
        held: [],
        skip: new Set(),
        members: new Set(),
        presenceTag: null,
      };
      this.channels.set(channel, chan);
      this.session?.join(chan);
    });
  }

  /** Leaves `channel`: no more of its messages, and no longer present in it. */
  leave(channel) {
    const chan = this.channels.get(channel);
    if (!chan) return Promise.resolve();
    this.channels.delete(channel);
    this.session?.leave(chan);
    chan.waiter?.reject(new RtwireError(`left ${channel} before it was joined`));
    if (this.session?.leases) this.releasePresenceOf(channel);
    return Promise.resolve();
  }

  /**
   * Publishes `data` (a string or bytes) to `channel`; resolves with the id
   * the server gave it. `exceptSelf`: this client does not get it back.
   */
  publish(channel, data, { exceptSelf = false } = {}) {
    if (this._state === "closed") return Promise.reject(new RtwireError("the client is closed"));
    if (typeof data !== "string" && !asBytes(data)) {
      return Promise.reject(new RtwireError("publish: data must be a string or bytes"));
    }
    const socket = this.session?.publish && !this.options.publishToken ? this.session : null;
    const chan = exceptSelf ? this.channels.get(channel) : null;
    if (socket?.isOpen) {
      return socket.publish(channel, data, exceptSelf).then((ack) => {
        if (chan) this.skipOwn(chan, ack.id);
        return ack;
      });
    }
    // Over HTTP the server cannot tell this client's streams from others:
    // hold the channel's deliveries until the id is known, then drop it.
    if (chan) chan.holds += 1;
    const release = (id) => {
      if (!chan) return;
      if (id) this.skipOwn(chan, id);
      chan.holds -= 1;
      if (chan.holds === 0) this.flush(chan);
    };
    return this.post(channel, data).then(
      (ack) => {
        release(ack.id);
        return ack;
      },
      (e) => {
        release(null);
        throw e;
      },
    );
  }

  /** Sends `data` to one user's private room (`user:NAME`). */
  send(user, data) {
    return this.publish(`user:${user}`, data);
  }

  /** The identities present in `channel`, sorted. */
  presence(channel) {
    if (this.session?.presence && this.session.isOpen) return this.session.presence(channel);
    return this.request("GET", `/channels/${encodeURIComponent(channel)}/presence`, { auth: this.readToken() })
      .then((r) => r.json())
      .then((body) => body.members);
  }

  /** Closes every connection; the client cannot be used again. */
  close() {
    if (this._state === "closed") return;
    if (this.session?.leases) this.releasePresence();
    this.stopSession();
    clearInterval(this.tick);
    clearTimeout(this.retryTimer);
    clearTimeout(this.upgradeTimer);
    if (typeof removeEventListener === "function") {
      removeEventListener("online", this.onWake);
      removeEventListener("pagehide", this.onLeavePage);
      globalThis.document?.removeEventListener?.("visibilitychange", this.onWake);
    }
    for (const chan of this.channels.values()) chan.waiter?.reject(new RtwireError("the client was closed"));
    this.channels.clear();
    this.setState("closed");
  }

  // ----- sessions: one transport's connection(s), replaced on failure -----

  start() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const kind = this.transport;
    const make = { websocket: WsSession, sse: SseSession, "long-poll": LongPollSession, poll: PollSession }[kind];
    const session = new make(this);
    this.session = session;
    session.start();
    for (const chan of this.channels.values()) session.join(chan);
  }

  stopSession() {
    const session = this.session;
    this.session = null;
    session?.stop();
  }

  /** Called by the session once it carries traffic. */
  sessionOpened(session) {
    if (session !== this.session) return;
    this.opened.add(this.index);
    this.failures = 0;
    this.wrapped = 0;
    this.setState("open");
    clearTimeout(this.upgradeTimer);
    if (this.index > 0) {
      // Retry the better transports now and then (each failed try waits longer).
      const wait = Math.min(this.options.upgradeRetryMs * 2 ** this.probes, 10 * this.options.upgradeRetryMs);
      this.upgradeTimer = setTimeout(() => this.upgrade(), wait);
    } else {
      this.probes = 0;
    }
  }

  /** Called by the session when it is dead (or never came up). */
  sessionFailed(session, reason) {
    if (session !== this.session || this._state === "closed") return;
    const wasOpen = session.isOpen;
    this.stopSession();
    clearTimeout(this.upgradeTimer);
    this.failures += 1;
    const last = this.options.transports.length - 1;
    const movesOn = !wasOpen && (!this.opened.has(this.index) || this.failures >= STUBBORN_FAILURES);
    let wait = 0;
    if (movesOn && this.index < last) {
      this.index += 1;
      this.failures = 0;
    } else if (movesOn) {
      // Every transport failed: from the top again, after a pause.
      this.index = 0;
      this.failures = 0;
      this.wrapped += 1;
      wait = delay(this.options.reconnect.minDelayMs, this.options.reconnect.maxDelayMs, this.wrapped);
    } else {
      wait = delay(this.options.reconnect.minDelayMs, this.options.reconnect.maxDelayMs, this.failures);
    }
    this.emit("error", { transport: session.kind, reason });
    this.setState("reconnecting");
    this.retryTimer = setTimeout(() => this.start(), wait);
  }

  /** Tries the better transports again: the chain falls back to this one if they fail. */
  upgrade() {
    if (!this.session?.isOpen || this.index === 0) return;
    this.probes += 1;
    for (let i = 0; i < this.index; i++) this.opened.delete(i);
    this.stopSession();
    this.index = 0;
    this.setState("reconnecting");
    this.start();
  }

  /** The liveness checks, on every tick (late ones too, in a background tab). */
  check() {
    this.session?.check(Date.now());
  }

  /** The page is visible again, or the network is back: check now, retry now. */
  wake() {
    if (globalThis.document?.visibilityState === "hidden") return;
    this.check();
    if (this.retryTimer) this.start();
  }

  // ----- what the sessions hand back -----

  /** A channel's subscription is confirmed on the current session. */
  joined(chan) {
    if (!chan.confirmed) {
      chan.confirmed = true;
      const waiter = chan.waiter;
      chan.waiter = null;
      waiter?.resolve();
    }
  }

  /** The server refused a channel: the join fails, or (later) an error event. */
  refused(chan, reason, status) {
    if (this.channels.get(chan.name) !== chan) return;
    this.channels.delete(chan.name);
    this.session?.leave(chan);
    const error = new RtwireError(`${chan.name}: ${reason}`, status);
    if (chan.waiter) chan.waiter.reject(error);
    else this.emit("error", { channel: chan.name, reason, status });
  }

  /** The server said the resume point was not exact. */
  gap(chan, resume, firstAvailable) {
    if (this.channels.get(chan.name) !== chan || resume === "exact") return;
    this.emit("gap", { channel: chan.name, resume, firstAvailable: firstAvailable ?? null });
  }

  /** A message for the application, unless it is a duplicate or this client's own. */
  deliver(chan, id, data) {
    if (this.channels.get(chan.name) !== chan) return;
    if (chan.holds > 0) {
      chan.held.push({ id, data });
      return;
    }
    if (!isAfter(id, chan.last)) return;
    const own = chan.skip.delete(id);
    chan.last = id;
    this.prune(chan);
    if (own) return;
    try {
      chan.onMessage({ channel: chan.name, id, data });
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  /** Where the channel's subscription stands, with no message (a start, a poll's `next`). */
  position(chan, id) {
    if (chan.holds > 0) {
      chan.held.push({ id, data: undefined });
      return;
    }
    if (id && isAfter(id, chan.last)) {
      chan.last = id;
      this.prune(chan);
    }
  }

  flush(chan) {
    const held = chan.held;
    chan.held = [];
    for (const { id, data } of held) {
      if (data === undefined) this.position(chan, id);
      else this.deliver(chan, id, data);
    }
  }

  skipOwn(chan, id) {
    if (isAfter(id, chan.last)) chan.skip.add(id);
  }

  /** Own ids at or before the position will not come again. */
  prune(chan) {
    for (const id of chan.skip) if (!isAfter(id, chan.last)) chan.skip.delete(id);
  }

  /** A presence change from the server: emitted if it changes what is known. */
  presenceChange(chan, joined, left) {
    const came = joined.filter((m) => !chan.members.has(m));
    const went = left.filter((m) => chan.members.has(m));
    for (const m of came) chan.members.add(m);
    for (const m of went) chan.members.delete(m);
    if (came.length || went.length) this.emit("presence", { channel: chan.name, joined: came, left: went });
  }

  /** The whole list: the differences from what was known are emitted. */
  presenceList(chan, members) {
    const now = new Set(members);
    const left = [...chan.members].filter((m) => !now.has(m));
    this.presenceChange(chan, members, left);
  }

  wantsPresence() {
    return (this.listeners.get("presence")?.size ?? 0) > 0;
  }

  /** Fetches a channel's list if it changed (ETag), for the transports the server cannot push it on. */
  syncPresence(chan) {
    const headers = chan.presenceTag ? { "if-none-match": chan.presenceTag } : {};
    return this.request("GET", `/channels/${encodeURIComponent(chan.name)}/presence`, { auth: this.readToken(), headers })
      .then(async (r) => {
        if (r.status === 304 || this.channels.get(chan.name) !== chan) return;
        chan.presenceTag = r.headers.get("etag");
        this.presenceList(chan, (await r.json()).members);
      })
      .catch(() => {});
  }

  /** Polling clients leave presence when they go (else their lease lapses). */
  releasePresence() {
    for (const name of this.channels.keys()) this.releasePresenceOf(name);
  }

  releasePresenceOf(channel) {
    if (!this.options.user || channel.startsWith("user:")) return;
    this.request("DELETE", `/channels/${encodeURIComponent(channel)}/presence`, { auth: this.options.user, keepalive: true })
      .catch(() => {});
  }

  // ----- HTTP -----

  readToken() {
    return this.options.user ?? this.options.token;
  }

  url(path, query = {}) {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(query)) if (v != null) url.searchParams.set(k, v);
    return url.href;
  }

  /** A request with a deadline; rejects on a network error, resolves with any status. */
  request(method, path, { query, auth, headers = {}, body, signal, timeoutMs, keepalive } = {}) {
    const all = { ...headers };
    if (auth) all.authorization = `Bearer ${auth}`;
    const limit = AbortSignal.timeout(timeoutMs ?? this.options.requestTimeoutMs);
    const both = signal ? anySignal([signal, limit]) : limit;
    return fetch(this.url(path, query), { method, headers: all, body, signal: both, keepalive, cache: "no-store" });
  }

  /** POST /channels/NAME: the acknowledgement is the id in the 202. */
  async post(channel, data) {
    const bytes = asBytes(data);
    const r = await this.request("POST", `/channels/${encodeURIComponent(channel)}`, {
      auth: this.options.publishToken ?? this.options.user,
      headers: { "content-type": bytes ? "application/octet-stream" : "text/plain; charset=utf-8" },
      body: bytes ?? data,
    });
    const text = await r.text();
    if (r.status !== 202) throw new RtwireError(text.trim() || `HTTP ${r.status}`, r.status);
    return { id: JSON.parse(text).id };
  }
}

function resolveBase(baseUrl) {
  const origin = globalThis.location?.href;
  if (!baseUrl && !origin) throw new RtwireError("connect: baseUrl is required outside a page");
  return new URL(baseUrl || "/", origin).href.replace(/\/+$/, "");
}

function anySignal(signals) {
  if (AbortSignal.any) return AbortSignal.any(signals);
  const controller = new AbortController();
  for (const s of signals) s.addEventListener("abort", () => controller.abort(s.reason), { once: true });
  return controller.signal;
}

/** A reason from an HTTP error answer: its body, or its status. */
async function reasonOf(response) {
  const text = await response.text().catch(() => "");
  return text.trim() || `HTTP ${response.status}`;
}

/** Statuses that refuse a channel for good (a bad name, no permission), not a passing failure. */
function refuses(status) {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

// ----- WebSocket: /ws, one socket for every channel, commands with refs -----

class WsSession {
  constructor(client) {
    this.client = client;
    this.kind = "websocket";
    this.isOpen = false;
    this.pending = new Map();
    this.nextRef = 1;
    this.lastHeard = Date.now();
    this.pingSent = null;
    this.sent = new Set();
  }

  start() {
    const c = this.client;
    if (typeof WebSocket !== "function") {
      queueMicrotask(() => c.sessionFailed(this, "no WebSocket here"));
      return;
    }
    const url = new URL(c.url("/ws", { user_token: c.options.user, token: c.options.token }));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url.href);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    // Open once the server answers, not at the upgrade: a proxy may pass
    // the upgrade and then nothing.
    ws.onopen = () => this.command({ op: "ping" }).catch(() => {});
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => this.fail(`closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`);
    ws.onerror = () => this.fail("WebSocket error");
  }

  stop() {
    this.stopped = true;
    for (const { reject } of this.pending.values()) reject(new RtwireError("connection lost before the answer"));
    this.pending.clear();
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      try {
        this.ws.close(1000);
      } catch {
        // Closing a socket that is still connecting may throw in old engines.
      }
    }
  }

  fail(reason) {
    if (!this.stopped) this.client.sessionFailed(this, reason);
  }

  check(now) {
    const limit = this.client.options.heartbeatMs;
    if (!this.isOpen && now - this.lastHeard > limit) return this.fail("no answer from the server");
    if (this.pingSent != null && now - this.pingSent > limit) return this.fail("no pong in time");
    if (this.isOpen && this.pingSent == null && now - this.lastHeard > limit) {
      this.pingSent = now;
      this.command({ op: "ping" }).catch(() => {});
    }
  }

  /** Sends a command; resolves with its reply, rejects with an `error` reply's reason. */
  command(fields) {
    const ref = String(this.nextRef++);
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      try {
        this.ws.send(JSON.stringify({ ...fields, ref }));
      } catch (e) {
        this.pending.delete(ref);
        reject(new RtwireError(`not sent: ${e.message}`));
      }
    });
  }

  join(chan) {
    // Joined once the server has answered (receive), never twice.
    if (!this.isOpen || this.sent.has(chan)) return;
    this.sent.add(chan);
    const since = chan.last ?? undefined;
    this.command({ op: "join", channel: chan.name, since }).then(
      (reply) => {
        this.client.gap(chan, reply.resume, reply.first_available);
        this.client.position(chan, reply.since);
        this.client.joined(chan);
        if (this.client.wantsPresence()) this.presence(chan.name).then((m) => this.client.presenceList(chan, m), () => {});
      },
      (e) => {
        if (!this.stopped) this.client.refused(chan, e.message);
      },
    );
  }

  leave(chan) {
    if (!this.sent.delete(chan)) return;
    if (this.ws?.readyState === 1) this.command({ op: "leave", channel: chan.name }).catch(() => {});
  }

  publish(channel, data, exceptSelf) {
    const bytes = asBytes(data);
    const body = bytes ? { data_b64: toBase64(bytes) } : { data };
    return this.command({ op: "publish", channel, ...body, except_self: exceptSelf || undefined })
      .then((reply) => ({ id: reply.id }));
  }

  presence(channel) {
    return this.command({ op: "presence", channel }).then((reply) => reply.members);
  }

  receive(text) {
    this.lastHeard = Date.now();
    this.pingSent = null;
    const c = this.client;
    if (!this.isOpen) {
      this.isOpen = true;
      c.sessionOpened(this);
      for (const chan of c.channels.values()) this.join(chan);
    }
    if (typeof text !== "string") return;
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m.ref != null && this.pending.has(m.ref)) {
      const { resolve, reject } = this.pending.get(m.ref);
      this.pending.delete(m.ref);
      if (m.type === "error") reject(new RtwireError(m.reason));
      else resolve(m);
      return;
    }
    const chan = c.channels.get(m.channel);
    if (m.type === "message" && chan) c.deliver(chan, m.id, payload(m));
    else if (m.type === "presence_change" && chan) c.presenceChange(chan, m.joined, m.left);
    else if (m.type === "presence" && chan) c.presenceList(chan, m.members);
    // `joined` for user:NAME comes unasked; an app that joins it gets its own.
  }
}

// ----- HTTP transports: one loop per channel, the session fails as a whole -----

class HttpSession {
  constructor(client, kind) {
    this.client = client;
    this.kind = kind;
    this.isOpen = false;
    this.loops = new Map();
    this.abort = new AbortController();
    this.presenceAt = 0;
  }

  start() {
    // With nothing joined there is nothing to try yet: open.
    queueMicrotask(() => {
      if (!this.stopped && this.client.channels.size === 0) this.opened();
    });
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
    for (const loop of this.loops.values()) loop.abort.abort();
  }

  opened() {
    if (this.isOpen || this.stopped) return;
    this.isOpen = true;
    this.client.sessionOpened(this);
  }

  fail(reason) {
    if (!this.stopped) this.client.sessionFailed(this, reason);
  }

  join(chan) {
    if (this.loops.has(chan.name)) return;
    const loop = { chan, abort: new AbortController(), since: Date.now(), heard: Date.now() };
    this.loops.set(chan.name, loop);
    this.run(loop).catch((e) => {
      if (!loop.abort.signal.aborted && !this.stopped) this.fail(e.message);
    });
  }

  leave(chan) {
    const loop = this.loops.get(chan.name);
    this.loops.delete(chan.name);
    loop?.abort.abort();
  }

  get(path, query, loop, timeoutMs) {
    return this.client.request("GET", path, {
      query,
      auth: this.client.readToken(),
      signal: loop.abort.signal,
      timeoutMs,
    });
  }

  /** A non-200 answer: refuses the channel for good, or fails the session. */
  async refusal(loop, response) {
    const reason = await reasonOf(response);
    if (refuses(response.status)) {
      this.loops.delete(loop.chan.name);
      this.client.refused(loop.chan, reason, response.status);
    } else {
      throw new RtwireError(reason, response.status);
    }
  }

  live(loop) {
    return this.loops.get(loop.chan.name) === loop && !this.stopped;
  }

  check(now) {
    if (!this.client.wantsPresence() || now - this.presenceAt < this.client.options.presenceIntervalMs) return;
    this.presenceAt = now;
    if (this.pushesPresence) return;
    for (const loop of this.loops.values()) if (loop.chan.confirmed) this.client.syncPresence(loop.chan);
  }

  /** One poll's answer (`long-poll` and `poll`): messages, resume, next. */
  answer(loop, body) {
    const c = this.client;
    c.joined(loop.chan);
    this.opened();
    c.gap(loop.chan, body.resume, body.first_available);
    for (const item of body.messages) c.deliver(loop.chan, item.id, payload(item));
    c.position(loop.chan, body.next);
    return body.more;
  }
}

/** GET /channels/NAME/events, read as a stream (fetch): it works in Node, sends headers, sees heartbeats. */
class SseSession extends HttpSession {
  constructor(client) {
    super(client, "sse");
    this.pushesPresence = true;
  }

  async run(loop) {
    const c = this.client;
    const path = `/channels/${encodeURIComponent(loop.chan.name)}/events`;
    const response = await c.request("GET", path, {
      query: { "last-event-id": loop.chan.last ?? undefined },
      auth: c.readToken(),
      headers: { accept: "text/event-stream" },
      signal: loop.abort.signal,
      // The stream lives on; only its start has the request deadline.
      timeoutMs: 2 ** 31 - 1,
    });
    if (response.status !== 200) return this.refusal(loop, response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { data: [] };
    loop.heard = Date.now();
    c.joined(loop.chan);
    if (c.wantsPresence()) c.syncPresence(loop.chan);
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !this.live(loop)) break;
      loop.heard = Date.now();
      this.opened();
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          this.dispatch(loop.chan, event);
          event = { data: [] };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") event.data.push(value);
          else if (field === "id") event.id = value;
          else if (field === "event") event.type = value;
        }
      }
    }
    if (this.live(loop)) throw new RtwireError("the event stream ended");
  }

  dispatch(chan, event) {
    const c = this.client;
    const data = event.data.join("\n");
    if (event.data.length === 0) {
      // An id alone: where the stream starts.
      if (event.id) c.position(chan, event.id);
      return;
    }
    switch (event.type ?? "message") {
      case "message":
        return c.deliver(chan, event.id, data);
      case "binary":
        return c.deliver(chan, event.id, fromBytes(fromBase64(data)));
      case "gap":
        return c.gap(chan, "gap", data || null);
      case "epoch_changed":
      case "ahead":
        return c.gap(chan, event.type, null);
      case "presence_change": {
        const m = JSON.parse(data);
        return c.presenceChange(chan, m.joined, m.left);
      }
      case "presence":
        return c.presenceList(chan, JSON.parse(data).members);
      default:
        // `lagged`: the stream ends next, and is resumed.
        return undefined;
    }
  }

  check(now) {
    super.check(now);
    for (const loop of this.loops.values()) {
      if (now - loop.heard > 2 * this.client.options.heartbeatMs) return this.fail("the event stream went silent");
    }
  }
}

/** GET /channels/NAME/long-poll?since=ID: held by the server until a message comes. */
class LongPollSession extends HttpSession {
  constructor(client) {
    super(client, "long-poll");
    this.leases = true;
  }

  async run(loop) {
    const path = `/channels/${encodeURIComponent(loop.chan.name)}/long-poll`;
    let first = true;
    while (this.live(loop)) {
      const since = loop.chan.last ?? undefined;
      // The first poll with no position answers at once, with where "now" is.
      const timeout = first && since == null ? 0 : LONG_POLL_S;
      first = false;
      const deadline = timeout * 1000 + this.client.options.heartbeatMs;
      const response = await this.get(path, { since, timeout }, loop, deadline);
      if (response.status !== 200) return this.refusal(loop, response);
      const body = await response.json();
      if (!this.live(loop)) return;
      this.answer(loop, body);
    }
  }
}

/** GET /channels/NAME/poll?since=ID every pollIntervalMs. */
class PollSession extends HttpSession {
  constructor(client) {
    super(client, "poll");
    this.leases = true;
  }

  async run(loop) {
    const name = encodeURIComponent(loop.chan.name);
    while (this.live(loop)) {
      const since = loop.chan.last ?? undefined;
      // With no position yet, a long poll that answers at once says where "now" is.
      const [path, query] = since == null
        ? [`/channels/${name}/long-poll`, { timeout: 0 }]
        : [`/channels/${name}/poll`, { since }];
      const response = await this.get(path, query, loop);
      if (response.status !== 200) return this.refusal(loop, response);
      const body = await response.json();
      if (!this.live(loop)) return;
      if (this.answer(loop, body)) continue;
      await new Promise((ok) => {
        const signal = loop.abort.signal;
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          ok();
        };
        const timer = setTimeout(done, this.client.options.pollIntervalMs);
        signal.addEventListener("abort", done);
      });
    }
  }
}
