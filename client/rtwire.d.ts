// Types for rtwire.js, the browser (and Node) client of `rtwire serve`.
// The module itself needs no build step; this file is for editors and tsc.

/** The transports, in the default order of preference. */
export type Transport = "websocket" | "sse" | "long-poll" | "poll";

/** `connecting` before the first connection opens, `reconnecting` between two. */
export type State = "connecting" | "open" | "reconnecting" | "closed";

/** What the server said about a resume point that was not exact. */
export type Resume =
  /** History no longer reaches back to the id: messages were lost. */
  | "gap"
  /** The server restarted (or its history was reset): ids start over. */
  | "epoch_changed"
  /** The id is ahead of the server's latest (SSE only): nothing is replayed. */
  | "ahead";

export interface Options {
  /** Ordered preference; the client falls back along it and retries the first later. */
  transports?: Transport[];
  /** The server's shared token: `Authorization: Bearer` over HTTP, `?token=` on /ws. */
  token?: string;
  /** A user token (identity, presence, a private room); over HTTP it is sent instead of `token`, `?user_token=` on /ws. */
  user?: string;
  /** A token for publishing over HTTP when it differs from `user`. */
  publishToken?: string;
  /** Exponential backoff with full jitter between reconnects (defaults 250 and 5000). */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** Time between short polls (default 1000). */
  pollIntervalMs?: number;
  /** The server's heartbeat interval: twice this without traffic is a dead connection (default 15000). */
  heartbeatMs?: number;
  /** How long to stay on a fallback transport before trying the better one again (default 60000). */
  upgradeRetryMs?: number;
  /** How often polling transports refresh presence (default 3000). */
  presenceIntervalMs?: number;
  /** Deadline for one HTTP request that the server answers at once (default 15000). */
  requestTimeoutMs?: number;
}

/** One message, once and in order. */
export interface Message {
  channel: string;
  /** `EPOCH-SEQ`, the id `publish` resolved with; pass it as `since` to resume. */
  id: string;
  /** A string, or the bytes of a payload that is not UTF-8 text. */
  data: string | Uint8Array;
}

export interface JoinOptions {
  /** Deliver what came after this id (default: only what comes after the join). */
  since?: string;
}

export interface PublishOptions {
  /** This client does not get its own message back. */
  exceptSelf?: boolean;
}

/** The server's acknowledgement of a publish. */
export interface Ack {
  id: string;
}

export interface Events {
  state: { state: State; transport: Transport };
  gap: { channel: string; resume: Resume; firstAvailable: string | null };
  presence: { channel: string; joined: string[]; left: string[] };
  /** A channel refused after it was joined, or a transport that failed. */
  error: { channel?: string; transport?: Transport; reason: string; status?: number };
}

/** An error the server or the connection gave. */
export class RtwireError extends Error {
  /** The HTTP status of the answer, where there was one. */
  status?: number;
  constructor(message: string, status?: number);
}

export interface Client {
  readonly state: State;
  /** The transport in use, or being tried. */
  readonly transport: Transport;
  /** Calls `fn` on each `name` event; returns a function that removes it. */
  on<K extends keyof Events>(name: K, fn: (event: Events[K]) => void): () => void;
  off<K extends keyof Events>(name: K, fn: (event: Events[K]) => void): void;
  /** Resolves once the server has subscribed the channel; rejects with its reason. */
  join(channel: string, onMessage: (message: Message) => void, options?: JoinOptions): Promise<void>;
  leave(channel: string): Promise<void>;
  /** Resolves once the server has accepted the message; rejects with its reason. */
  publish(channel: string, data: string | Uint8Array | ArrayBuffer, options?: PublishOptions): Promise<Ack>;
  /** Publishes to one user's private room, `user:NAME`. */
  send(user: string, data: string | Uint8Array | ArrayBuffer): Promise<Ack>;
  /** The identities present in the channel, sorted. */
  presence(channel: string): Promise<string[]>;
  /** Closes every connection; the client cannot be used again. */
  close(): void;
}

/** Connects to the server at `baseUrl` (`""` for the page's own origin). */
export function connect(baseUrl: string, options?: Options): Client;
