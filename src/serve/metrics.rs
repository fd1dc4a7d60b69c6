//! Counters behind `GET /metrics` (Prometheus text format 0.0.4) and the
//! per-minute log line.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::Hub;

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

#[derive(Default)]
pub(crate) struct Metrics {
    open: [AtomicU64; 4],
    total: [AtomicU64; 4],
}

/// Counts one open connection (or held request) of a transport while alive.
pub(crate) struct Open<'a> {
    metrics: &'a Metrics,
    transport: Transport,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.metrics.open[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn open(&self, transport: Transport) -> Open<'_> {
        self.open[transport as usize].fetch_add(1, Ordering::Relaxed);
        self.total[transport as usize].fetch_add(1, Ordering::Relaxed);
        Open {
            metrics: self,
            transport,
        }
    }

    pub fn render(&self, hub: &Hub) -> String {
        let stats = hub.stats();
        let mut out = String::new();
        out.push_str(
            "# HELP rtwire_connections Open connections (held requests for polls) per transport.\n",
        );
        out.push_str("# TYPE rtwire_connections gauge\n");
        for t in Transport::ALL {
            let n = self.open[t as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "rtwire_connections{{transport=\"{}\"}} {n}", t.label());
        }
        out.push_str(
            "# HELP rtwire_requests_total Connections or requests served per transport.\n",
        );
        out.push_str("# TYPE rtwire_requests_total counter\n");
        for t in Transport::ALL {
            let n = self.total[t as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rtwire_requests_total{{transport=\"{}\"}} {n}",
                t.label()
            );
        }
        let counters = [
            (
                "rtwire_messages_published_total",
                "Messages published.",
                stats.published,
            ),
            (
                "rtwire_messages_delivered_total",
                "Messages queued to subscribers.",
                stats.delivered,
            ),
            (
                "rtwire_subscribers_dropped_total",
                "Subscribers dropped for lagging.",
                stats.lagged,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rtwire_channels Channels alive.\n# TYPE rtwire_channels gauge\nrtwire_channels {}",
            hub.channel_count()
        );
        let _ = writeln!(
            out,
            "# HELP rtwire_history_bytes Bytes all channels' histories hold.\n# TYPE rtwire_history_bytes gauge\nrtwire_history_bytes {}",
            stats.history_bytes
        );
        out
    }

    pub fn log_summary(&self, hub: &Hub) {
        let stats = hub.stats();
        let open: Vec<String> = Transport::ALL
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    t.label(),
                    self.open[*t as usize].load(Ordering::Relaxed)
                )
            })
            .collect();
        eprintln!(
            "rtwire serve: open {} channels={} published={} delivered={} dropped={}",
            open.join(" "),
            hub.channel_count(),
            stats.published,
            stats.delivered,
            stats.lagged
        );
    }
}
