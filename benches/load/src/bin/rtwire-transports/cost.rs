//! `cost`: the bytes and requests each transport needs to bring M
//! messages to one subscriber, then what each costs per hour when idle.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use rtwire::proto::Message;
use tokio::time::{timeout, Instant};

use crate::counted::Traffic;
use crate::options::Options;
use crate::publisher::Publisher;
use crate::subscriber::{
    next_sse_control, Deliveries, Polling, Report, Setup, Subscriber, Transport,
};
use crate::table::{duration_ns, seconds, thousands};

/// Longest wait for one subscriber to connect and subscribe.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// One transport's delivery of the M messages.
struct Row {
    transport: Transport,
    report: Report,
    median_latency_ns: u64,
}

pub async fn run(options: &Options) -> Result<(), String> {
    let mut rows = Vec::new();
    let mut publisher_traffic = Traffic::default();
    for (i, &transport) in options.transports.iter().enumerate() {
        // Names of one length, and a channel each so that every run's ids
        // count from 1: names and ids travel in requests and deliveries,
        // and no transport should carry longer ones than another.
        let channel = format!("room-{}", i % 10);
        let (row, published) = deliver(options, transport, &channel).await?;
        eprintln!(
            "rtwire-transports: {}: {} messages in order, {} B",
            transport.label(),
            options.messages,
            row.report.traffic.total()
        );
        rows.push(row);
        publisher_traffic = published;
    }
    print_cost(options, &rows, publisher_traffic);
    if options.idle {
        let idle = idle(options).await?;
        print_idle(options, &idle);
    }
    Ok(())
}

/// The setup of a run on `channel`: a first message is published, and
/// subscribers start after its id.
async fn prepare(options: &Options, channel: &str) -> Result<(Publisher, Setup), String> {
    let mut publisher =
        Publisher::connect(options.addr, &options.host, channel, options.server).await?;
    let since = publisher.publish(b"before the run").await?;
    let setup = Setup {
        server: options.server,
        addr: options.addr,
        host: options.host.clone(),
        channel: channel.to_owned(),
        since,
        messages: options.messages,
        size: options.size,
        poll_interval: options.poll_interval,
    };
    Ok((publisher, setup))
}

/// One subscriber of `transport` receives all the messages on `channel`;
/// returns its row and what the publisher carried.
async fn deliver(
    options: &Options,
    transport: Transport,
    channel: &str,
) -> Result<(Row, Traffic), String> {
    let fail = |e: String| format!("{}: {e}", transport.label());
    let (mut publisher, setup) = prepare(options, channel).await?;
    let deliveries = RefCell::new(Deliveries::default());
    let mut subscriber = timeout(OPEN_TIMEOUT, Subscriber::open(transport, &setup))
        .await
        .map_err(|_| fail("subscribing took over 10 s".into()))?
        .map_err(fail)?;
    let published_before = publisher.traffic();
    let start = Instant::now();
    let publish_time = Duration::from_secs_f64(f64::from(options.messages) / options.rate);
    let bound = publish_time + options.poll_interval + Duration::from_secs(10);
    // The short poller made its first poll in `open`, just now: the next
    // one is an interval later.
    let receive = subscriber.run(&setup, start + options.poll_interval, &deliveries);
    let publish = publisher.run(start, options.messages, options.size, options.rate);
    let (published, received) = timeout(bound, async { tokio::join!(publish, receive) })
        .await
        .map_err(|_| fail(format!("not every message arrived within {bound:?}")))?;
    published.map_err(fail)?;
    let report = received.map_err(fail)?;
    let deliveries = deliveries.into_inner();
    if deliveries.count != u64::from(options.messages) {
        return Err(fail(format!(
            "{} of {} messages arrived",
            deliveries.count, options.messages
        )));
    }
    let row = Row {
        transport,
        report,
        median_latency_ns: deliveries.latency.quantile(0.5),
    };
    Ok((row, publisher.traffic().since(published_before)))
}

fn print_cost(options: &Options, rows: &[Row], publisher: Traffic) {
    let payload = u64::from(options.messages) * options.size as u64;
    println!(
        "### Wire cost: {} messages of {} B to one subscriber, published at {}/s\n",
        options.messages, options.size, options.rate
    );
    println!("| transport | requests | client→server B | server→client B | total B | B/message | total / payload | median latency |");
    println!("| --- | --: | --: | --: | --: | --: | --: | --: |");
    for row in rows {
        let traffic = row.report.traffic;
        let label = match row.transport {
            Transport::Poll => format!("short polling, every {}", seconds(options.poll_interval)),
            other => other.label().to_owned(),
        };
        println!(
            "| {label} | {} | {} | {} | {} | {:.0} | {:.2} | {} |",
            row.report.requests,
            thousands(traffic.sent),
            thousands(traffic.received),
            thousands(traffic.total()),
            traffic.total() as f64 / f64::from(options.messages),
            traffic.total() as f64 / payload as f64,
            duration_ns(row.median_latency_ns),
        );
    }
    println!(
        "\nPayload: {} B. Publisher, the same for every transport and not in the table: \
         {} POSTs, {} B client→server, {} B server→client ({:.0} B per message).\n",
        thousands(payload),
        options.messages,
        thousands(publisher.sent),
        thousands(publisher.received),
        publisher.total() as f64 / f64::from(options.messages)
    );
}

// ----- idle -----

/// What one transport carries with nothing published.
struct IdleRow {
    transport: Transport,
    what: &'static str,
    /// Bytes of one occurrence (or over the whole watch for WebSocket).
    bytes: u64,
    /// How often it recurs, or how long a WebSocket was watched.
    every: Duration,
}

impl IdleRow {
    fn per_hour(&self) -> f64 {
        self.bytes as f64 * 3600.0 / self.every.as_secs_f64()
    }
}

/// Measures the four idle costs at once: a short poll, a long poll that
/// times out, an SSE heartbeat, and a WebSocket watched for as long as the
/// other three take.
async fn idle(options: &Options) -> Result<Vec<IdleRow>, String> {
    let (_publisher, setup) = prepare(options, "room-i").await?;
    let Subscriber::Ws(mut ws) = Subscriber::open(Transport::Ws, &setup).await? else {
        unreachable!("a ws subscriber is a WebSocket");
    };
    let others = async {
        tokio::join!(
            idle_poll(&setup),
            idle_long_poll(&setup, options.idle_long_poll_timeout),
            idle_sse(&setup)
        )
    };
    // The long poll's timeout can be up to 120 s; one heartbeat is 15 s.
    let bound = Duration::from_secs(200);
    let watched = timeout(bound, watch_ws(&mut ws, others))
        .await
        .map_err(|_| format!("the idle measurements took over {bound:?}"))?;
    let (ws_bytes, window, (poll, long_poll, sse)) = watched?;
    Ok(vec![
        poll?,
        long_poll?,
        sse?,
        IdleRow {
            transport: Transport::Ws,
            what: "nothing (the server sends no pings)",
            bytes: ws_bytes.total(),
            every: window,
        },
    ])
}

/// One empty short poll (after a first one that warms the connection).
async fn idle_poll(setup: &Setup) -> Result<IdleRow, String> {
    let mut polling = Polling::connect(setup).await?;
    polling.poll(setup, "poll").await?;
    let before = polling.conn.traffic();
    if polling.poll(setup, "poll").await? > 0 {
        return Err("an idle poll got messages".into());
    }
    Ok(IdleRow {
        transport: Transport::Poll,
        what: "an empty poll (request + answer)",
        bytes: polling.conn.traffic().since(before).total(),
        every: setup.poll_interval,
    })
}

/// One long poll that times out, on a warmed connection; the period is
/// the time it was held.
async fn idle_long_poll(setup: &Setup, timeout: Option<u64>) -> Result<IdleRow, String> {
    let mut polling = Polling::connect(setup).await?;
    polling.poll(setup, "poll").await?;
    let before = polling.conn.traffic();
    let started = Instant::now();
    let query = timeout.map(|s| format!("&timeout={s}")).unwrap_or_default();
    polling.send(setup, "long-poll", &query).await?;
    if polling.answer(|_, _| Ok(())).await? > 0 {
        return Err("an idle long poll got messages".into());
    }
    Ok(IdleRow {
        transport: Transport::LongPoll,
        what: "a long poll that times out",
        bytes: polling.conn.traffic().since(before).total(),
        every: started.elapsed(),
    })
}

/// The first heartbeat of a stream; the period is the time it took.
async fn idle_sse(setup: &Setup) -> Result<IdleRow, String> {
    let Subscriber::Sse(mut conn) = Subscriber::open(Transport::Sse, setup).await? else {
        unreachable!("an sse subscriber is an HTTP connection");
    };
    let before = conn.traffic();
    let started = Instant::now();
    next_sse_control(&mut conn).await?;
    Ok(IdleRow {
        transport: Transport::Sse,
        what: "a `: heartbeat` comment",
        bytes: conn.traffic().since(before).total(),
        every: started.elapsed(),
    })
}

/// Counts what a joined WebSocket carries while `other` runs; a message
/// is an error (nothing is published).
async fn watch_ws<F: Future>(
    ws: &mut rtwire::ws::WebSocket<crate::counted::Counted<tokio::net::TcpStream>>,
    other: F,
) -> Result<(Traffic, Duration, F::Output), String> {
    let before = ws.get_ref().traffic();
    let started = Instant::now();
    tokio::pin!(other);
    loop {
        tokio::select! {
            out = &mut other => {
                return Ok((ws.get_ref().traffic().since(before), started.elapsed(), out));
            }
            // Cancel-safe: a message half read stays in the socket.
            message = ws.recv() => match message {
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
                other => return Err(format!("an idle WebSocket got {other:?}")),
            },
        }
    }
}

fn print_idle(options: &Options, rows: &[IdleRow]) {
    println!("### Idle cost: nothing published\n");
    println!("| transport | what recurs | bytes each | every | bytes/hour |");
    println!("| --- | --- | --: | --: | --: |");
    for row in rows {
        let every = match row.transport {
            Transport::Ws => format!("(watched {:.1} s)", row.every.as_secs_f64()),
            Transport::Poll => seconds(row.every),
            _ => format!("{:.1} s", row.every.as_secs_f64()),
        };
        println!(
            "| {} | {} | {} | {every} | {} |",
            row.transport.label(),
            row.what,
            thousands(row.bytes),
            thousands(row.per_hour().round() as u64)
        );
    }
    let long_poll = match options.idle_long_poll_timeout {
        Some(s) => format!("asked for timeout={s}"),
        None => "sent without a timeout, so held for the server's default".to_owned(),
    };
    println!(
        "\nMeasured once each, on connections already open, and multiplied by the \
         rate: the short poll's interval is the client's choice; the long poll \
         ({long_poll}) and the heartbeat recur as often as measured. Bytes are TCP \
         payload both ways; TCP/IP headers and ACKs are not counted.\n"
    );
}
