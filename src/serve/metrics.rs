//! Counters behind `GET /metrics` (Prometheus text format 0.0.4) and the
//! per-minute summary event.

use std::fmt::Write;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::hub::{BrokerStats, Hub};
use crate::push::PushStats;

/// The four transports, for per-transport counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    WebSocket,
    Sse,
    LongPoll,
    Poll,
}

impl Transport {
    const ALL: [Transport; 4] = [
        Transport::WebSocket,
        Transport::Sse,
        Transport::LongPoll,
        Transport::Poll,
    ];

    fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::LongPoll => "long_poll",
            Transport::Poll => "poll",
        }
    }
}

/// rtwire's routes, for `rtwire_requests_total{route}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteLabel {
    Publish,
    Poll,
    LongPoll,
    Events,
    Topic,
    Presence,
    Client,
    Webhooks,
    WebSub,
    WebSocket,
    Demo,
    Health,
    Metrics,
    Preflight,
    Fallback,
    NotFound,
    BadChannel,
    WrongMethod,
}

impl RouteLabel {
    const ALL: [RouteLabel; 18] = [
        RouteLabel::Publish,
        RouteLabel::Poll,
        RouteLabel::LongPoll,
        RouteLabel::Events,
        RouteLabel::Topic,
        RouteLabel::Presence,
        RouteLabel::Client,
        RouteLabel::Webhooks,
        RouteLabel::WebSub,
        RouteLabel::WebSocket,
        RouteLabel::Demo,
        RouteLabel::Health,
        RouteLabel::Metrics,
        RouteLabel::Preflight,
        RouteLabel::Fallback,
        RouteLabel::NotFound,
        RouteLabel::BadChannel,
        RouteLabel::WrongMethod,
    ];

    fn label(self) -> &'static str {
        match self {
            RouteLabel::Publish => "publish",
            RouteLabel::Poll => "poll",
            RouteLabel::LongPoll => "long_poll",
            RouteLabel::Events => "events",
            RouteLabel::Topic => "topic",
            RouteLabel::Presence => "presence",
            RouteLabel::Client => "client",
            RouteLabel::Webhooks => "webhooks",
            RouteLabel::WebSub => "websub",
            RouteLabel::WebSocket => "websocket",
            RouteLabel::Demo => "demo",
            RouteLabel::Health => "healthz",
            RouteLabel::Metrics => "metrics",
            RouteLabel::Preflight => "preflight",
            RouteLabel::Fallback => "fallback",
            RouteLabel::NotFound => "not_found",
            RouteLabel::BadChannel => "bad_channel",
            RouteLabel::WrongMethod => "method_not_allowed",
        }
    }
}

/// What every connection's I/O counts: bytes each way and responses by
/// status class. Shared by the connections through an `Arc`.
#[derive(Default)]
pub(crate) struct Traffic {
    received: AtomicU64,
    sent: AtomicU64,
    /// 1xx to 5xx.
    responses: [AtomicU64; 5],
}

impl Traffic {
    /// Counts one response head sent with `status`.
    pub fn response(&self, status: u16) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.responses[class as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A stream whose bytes are counted in [`Traffic`].
pub(crate) struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, traffic: Arc<Traffic>) -> Counted<S> {
        Counted { inner, traffic }
    }

    /// Where this stream counts.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.traffic
            .received
            .fetch_add(read as u64, Ordering::Relaxed);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count_sent(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count_sent(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Counted<S> {
    fn count_sent(&self, poll: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = poll {
            self.traffic.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    /// Sessions open per transport (WebSockets, SSE streams, long polls
    /// held, short polls being answered).
    open: [AtomicU64; 4],
    /// Sessions started per transport.
    total: [AtomicU64; 4],
    deliveries: [AtomicU64; 4],
    requests: [AtomicU64; RouteLabel::ALL.len()],
    connections_open: AtomicU64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    handshake_failures: AtomicU64,
    tls_handshake_failures: AtomicU64,
    pub traffic: Arc<Traffic>,
}

/// Counts one open session of a transport, or one HTTP connection, while
/// alive.
pub(crate) struct Open<'a> {
    gauge: &'a AtomicU64,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Open<'_> {
    fn count(gauge: &AtomicU64) -> Open<'_> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Open { gauge }
    }
}

impl Metrics {
    /// A session of `transport` starts; it ends when the guard drops.
    pub fn open(&self, transport: Transport) -> Open<'_> {
        self.total[transport as usize].fetch_add(1, Ordering::Relaxed);
        Open::count(&self.open[transport as usize])
    }

    /// An HTTP connection is being served; until the guard drops.
    pub fn connection(&self) -> Open<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        Open::count(&self.connections_open)
    }

    /// A client was refused for want of a slot or a descriptor.
    pub fn refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, route: RouteLabel) {
        self.requests[route as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `n` messages written to subscribers of `transport`.
    pub fn delivered(&self, transport: Transport, n: usize) {
        self.deliveries[transport as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A client whose TLS handshake failed, stalled or was shed.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Every metric in the Prometheus text format 0.0.4; the README lists
    /// them.
    pub fn render(
        &self,
        hub: &Hub,
        broker: Option<BrokerStats>,
        push: Option<PushStats>,
    ) -> String {
        let stats = hub.stats();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| [(String::new(), v)];
        let per_transport = |values: &[AtomicU64; 4]| -> Vec<(String, u64)> {
            Transport::ALL
                .iter()
                .map(|t| {
                    (
                        format!("{{transport=\"{}\"}}", t.label()),
                        load(&values[*t as usize]),
                    )
                })
                .collect()
        };
        let version = format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
        family(
            "rtwire_build_info",
            "gauge",
            "The running rtwire's version; always 1.",
            &[(version, 1)],
        );
        family(
            "rtwire_http_connections_open",
            "gauge",
            "HTTP connections being served (a WebSocket or an SSE stream holds its own).",
            &one(load(&self.connections_open)),
        );
        family(
            "rtwire_http_connections_accepted_total",
            "counter",
            "HTTP connections accepted and served.",
            &one(load(&self.connections_accepted)),
        );
        family(
            "rtwire_http_connections_refused_total",
            "counter",
            "Clients answered 503 at once: every slot taken, or no descriptor left.",
            &one(load(&self.connections_refused)),
        );
        family("rtwire_sessions_open", "gauge", "Open sessions per transport: WebSockets, SSE streams, long polls held, short polls being answered.", &per_transport(&self.open));
        family("rtwire_sessions_started_total", "counter", "Sessions started per transport: WebSocket upgrades, SSE streams, long and short polls.", &per_transport(&self.total));
        family(
            "rtwire_deliveries_total",
            "counter",
            "Messages written to subscribers per transport.",
            &per_transport(&self.deliveries),
        );
        let requests: Vec<(String, u64)> = RouteLabel::ALL
            .iter()
            .map(|r| {
                (
                    format!("{{route=\"{}\"}}", r.label()),
                    load(&self.requests[*r as usize]),
                )
            })
            .collect();
        family(
            "rtwire_requests_total",
            "counter",
            "HTTP requests per route (fallback: the embedding program's handler).",
            &requests,
        );
        let classes: Vec<(String, u64)> = (0..5)
            .map(|c| {
                (
                    format!("{{code=\"{}xx\"}}", c + 1),
                    load(&self.traffic.responses[c]),
                )
            })
            .collect();
        family(
            "rtwire_responses_total",
            "counter",
            "HTTP response heads sent per status class (a WebSocket upgrade is a 1xx).",
            &classes,
        );
        family(
            "rtwire_received_bytes_total",
            "counter",
            "Bytes read from clients, on every transport.",
            &one(load(&self.traffic.received)),
        );
        family(
            "rtwire_sent_bytes_total",
            "counter",
            "Bytes written to clients, on every transport.",
            &one(load(&self.traffic.sent)),
        );
        family(
            "rtwire_websocket_handshake_failures_total",
            "counter",
            "Requests to /ws refused in the WebSocket handshake.",
            &one(load(&self.handshake_failures)),
        );
        family(
            "rtwire_tls_handshake_failures_total",
            "counter",
            "Connections whose TLS handshake failed, took too long or was shed.",
            &one(load(&self.tls_handshake_failures)),
        );
        family(
            "rtwire_messages_published_total",
            "counter",
            "Messages published.",
            &one(stats.published),
        );
        family(
            "rtwire_messages_delivered_total",
            "counter",
            "Messages queued to subscribers by the hub, all transports.",
            &one(stats.delivered),
        );
        family(
            "rtwire_subscribers_dropped_total",
            "counter",
            "Subscribers dropped for lagging.",
            &one(stats.lagged),
        );
        family(
            "rtwire_channels",
            "gauge",
            "Channels alive.",
            &one(hub.channel_count() as u64),
        );
        family(
            "rtwire_history_bytes",
            "gauge",
            "Bytes all channels' histories hold.",
            &one(stats.history_bytes as u64),
        );
        if let Some(broker) = broker {
            render_broker(&mut family, broker);
        }
        if let Some(push) = push {
            render_push(&mut family, push);
        }
        out
    }

    /// The per-minute summary, an `info` event with one field per count.
    pub fn log_summary(&self, hub: &Hub) {
        let stats = hub.stats();
        let open = |t: Transport| self.open[t as usize].load(Ordering::Relaxed);
        tracing::info!(
            open.websocket = open(Transport::WebSocket),
            open.sse = open(Transport::Sse),
            open.long_poll = open(Transport::LongPoll),
            open.poll = open(Transport::Poll),
            channels = hub.channel_count(),
            published = stats.published,
            delivered = stats.delivered,
            dropped = stats.lagged,
            "rtwire serve: summary"
        );
    }
}

/// Push's families: only when push is on (`--admin-token`).
fn render_push(family: &mut impl FnMut(&str, &str, &str, &[(String, u64)]), p: PushStats) {
    let mut outcomes = Vec::new();
    for (kind, o) in [("webhook", p.webhook), ("websub", p.websub)] {
        for (outcome, n) in [
            ("delivered", o.delivered),
            ("failed", o.failed),
            ("gone", o.gone),
        ] {
            outcomes.push((format!("{{kind=\"{kind}\",outcome=\"{outcome}\"}}"), n));
        }
    }
    family(
        "rtwire_push_deliveries_total",
        "counter",
        "Delivery attempts to webhooks and WebSub callbacks, by outcome (each retry counts).",
        &outcomes,
    );
    let one = |v: u64| [(String::new(), v)];
    family(
        "rtwire_push_retries_pending",
        "gauge",
        "Deliveries waiting for their next retry.",
        &one(p.retries_pending),
    );
    family(
        "rtwire_push_endpoints_disabled_total",
        "counter",
        "Endpoints disabled by 410 Gone, and WebSub leases that ended.",
        &one(p.endpoints_disabled),
    );
    family(
        "rtwire_push_missed_total",
        "counter",
        "Times an endpoint fell so far behind that messages left the history before it came to them.",
        &one(p.missed),
    );
    family(
        "rtwire_push_endpoints",
        "gauge",
        "Webhooks registered and WebSub subscriptions active.",
        &[
            ("{kind=\"webhook\"}".to_owned(), p.webhooks),
            ("{kind=\"websub\"}".to_owned(), p.subscriptions),
        ],
    );
    family(
        "rtwire_push_verifications_failed_total",
        "counter",
        "WebSub verifications of intent the subscriber did not confirm.",
        &one(p.verifications_failed),
    );
}

/// The Redis broker's families: only on a node that runs on Redis.
fn render_broker(family: &mut impl FnMut(&str, &str, &str, &[(String, u64)]), b: BrokerStats) {
    let one = |v: u64| [(String::new(), v)];
    family(
        "rtwire_redis_connected",
        "gauge",
        "1 while the pub/sub connection to Redis is up.",
        &one(u64::from(b.connected)),
    );
    family(
        "rtwire_redis_refused_total",
        "counter",
        "Requests answered 503 because Redis failed or was too slow: publishes, and subscriptions or polls of channels not mirrored yet.",
        &[
            ("{op=\"publish\"}".to_owned(), b.publishes_refused),
            ("{op=\"attach\"}".to_owned(), b.attaches_refused),
        ],
    );
    family(
        "rtwire_redis_connection_failures_total",
        "counter",
        "Pub/sub connections to Redis lost, or attempts to open one that failed.",
        &one(b.connection_failures),
    );
    family(
        "rtwire_redis_resyncs_total",
        "counter",
        "Channel histories read from Redis: on the first local subscriber, after a reconnection, after a message that did not follow.",
        &one(b.resyncs),
    );
    family(
        "rtwire_redis_mirrored_channels",
        "gauge",
        "Channels this node mirrors from Redis.",
        &one(b.mirrored_channels),
    );
}
