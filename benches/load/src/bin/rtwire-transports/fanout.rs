//! `fanout`: N subscribers of one transport, one publisher, M messages:
//! delivery latency, losses, and what the server spent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use rtwire_load::histogram::Histogram;
use rtwire_load::sys::{cpu_seconds, machine_busy_seconds, vm_hwm_kib, vm_rss_kib};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

use crate::counted::Traffic;
use crate::http::metric;
use crate::nchan;
use crate::options::{Options, Server};
use crate::publisher::Publisher;
use crate::subscriber::{Deliveries, Report, Setup, Subscriber, Transport};
use crate::table::{duration_ns, seconds, thousands};

/// The channel of every run.
const CHANNEL: &str = "room";
/// Longest wait for one subscriber to connect and subscribe.
const OPEN_ONE: Duration = Duration::from_secs(10);
/// Longest wait for all of them.
const OPEN_ALL: Duration = Duration::from_secs(120);
/// Longest wait for the server to hold a batch of first long polls.
const HELD: Duration = Duration::from_secs(30);
/// Long polls opened at once: fewer than `rtwire serve`'s listen queue
/// holds (128, the standard library's backlog).
const LONG_POLL_BATCH: usize = 100;

/// The server's resident memory now, in KiB: the sum over its processes.
fn rss_kib(pids: &[u32]) -> Option<u64> {
    sum(pids, |p| vm_rss_kib(p).ok())
}

/// `f` summed over `pids`; `None` without pids or when one has no value.
fn sum<T: std::iter::Sum>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| f(p)).sum()
}

/// CPU seconds of the server, of this tool, and of the whole machine (all
/// cores): used so far, or over a phase.
#[derive(Clone, Copy, Debug, Default)]
struct CpuTimes {
    server: Option<f64>,
    tool: Option<f64>,
    machine: Option<f64>,
}

impl CpuTimes {
    fn now(server_pids: &[u32]) -> CpuTimes {
        CpuTimes {
            server: sum(server_pids, |p| cpu_seconds(Some(p))),
            tool: cpu_seconds(None),
            machine: machine_busy_seconds(),
        }
    }

    fn since(self, earlier: CpuTimes) -> CpuTimes {
        let delta = |now: Option<f64>, then: Option<f64>| Some(now? - then?);
        CpuTimes {
            server: delta(self.server, earlier.server),
            tool: delta(self.tool, earlier.tool),
            machine: delta(self.machine, earlier.machine),
        }
    }

    /// What was neither the server's nor this tool's: other programs, and
    /// interrupt work charged to no process.
    fn others(self) -> Option<f64> {
        Some((self.machine? - self.server? - self.tool?).max(0.0))
    }
}

/// What the measured phase gave.
#[derive(Default)]
struct Outcome {
    deliveries: Deliveries,
    /// Subscribers that got every message, and what they carried.
    finished: usize,
    traffic: Traffic,
    requests: u64,
    errors: Vec<String>,
    /// The subscribers that are done, connections open: closing ten
    /// thousand connections while others still wait for the last message
    /// would delay it, so they close after the phase.
    done: Vec<Subscriber>,
    /// Subscribers still waiting at the deadline.
    unfinished: usize,
    publish_error: Option<String>,
    /// The longest publish, stamp to answer, in ns.
    slowest_publish: u64,
    /// How late this tool's event loop ran a periodic timer: time that
    /// deliveries may have waited in the tool's sockets.
    loop_lag: Histogram,
}

pub async fn run(options: &Options) -> Result<(), String> {
    let transport = options.transports[0];
    let n = options.subscribers;
    let channel = CHANNEL;
    let mut publisher =
        Publisher::connect(options.addr, &options.host, channel, options.server).await?;
    let since = publisher.publish(b"before the run").await?;
    // One setup per node; ids mean the same on every node of one hub.
    let setups: Vec<Rc<Setup>> = options
        .nodes
        .iter()
        .map(|&addr| {
            Rc::new(Setup {
                server: options.server,
                addr,
                host: addr.to_string(),
                channel: channel.to_owned(),
                since: since.clone(),
                messages: options.messages,
                size: options.size,
                poll_interval: options.poll_interval,
            })
        })
        .collect();
    println!(
        "rtwire-transports fanout: {}, {} subscribers, {} messages of {} B at {}/s{}",
        transport.label(),
        thousands(n as u64),
        options.messages,
        options.size,
        options.rate,
        match options.server {
            Server::Rtwire => "",
            Server::Nchan => ", against Nchan",
        }
    );

    let empty = rss_kib(&options.server_pids);
    let opening = Instant::now();
    let subscribers = subscribe_all(options, transport, &setups).await?;
    let opened = opening.elapsed();
    let subscribed = rss_kib(&options.server_pids);

    let (outcome, phase) = measure(options, subscribers, &mut publisher).await;
    let end = rss_kib(&options.server_pids);
    let peak_kib = sum(&options.server_pids, |p| vm_hwm_kib(p).ok());
    // Nchan counts no dropped subscribers; those that failed or are
    // unfinished are still reported.
    let dropped = match options.server {
        Server::Rtwire => metric_sum(options, "rtwire_subscribers_dropped_total")
            .await
            .ok(),
        Server::Nchan => None,
    };

    let report = Summary {
        options,
        transport,
        opened,
        empty,
        subscribed,
        end,
        peak_kib,
        phase,
        dropped,
        outcome: &outcome,
    };
    report.print();
    report.verdict()
}

/// Opens every subscriber. Long polls go in batches, each held by the
/// server before the next is opened: subscribing with a long poll waits for
/// nothing from the server, so the client would connect faster than the
/// server accepts, overflow its listen queue, and have its dropped SYNs
/// retried a second or more later. Nchan's subscribers of the other kinds
/// are waited for too, all at the end: nothing Nchan sends them says that
/// they are subscribed, its channel's subscriber count does.
async fn subscribe_all(
    options: &Options,
    transport: Transport,
    setups: &[Rc<Setup>],
) -> Result<Vec<Opened>, String> {
    let (n, parallel) = (options.subscribers, options.open_parallel);
    if transport != Transport::LongPoll {
        let all = open_all(transport, setups, n, parallel).await?;
        if options.server == Server::Nchan {
            wait_until_held(options, n).await?;
        }
        return Ok(all);
    }
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch = LONG_POLL_BATCH.min(n - all.len());
        all.extend(open_all(transport, setups, batch, parallel).await?);
        wait_until_held(options, all.len()).await?;
    }
    Ok(all)
}

/// A subscriber and the setup of the node it subscribed on.
type Opened = (Rc<Setup>, Subscriber);

/// Opens `n` subscribers, `parallel` at a time, on the nodes in turn.
async fn open_all(
    transport: Transport,
    setups: &[Rc<Setup>],
    n: usize,
    parallel: usize,
) -> Result<Vec<Opened>, String> {
    let setups: Rc<[Rc<Setup>]> = setups.into();
    let next = Rc::new(Cell::new(0usize));
    let opened = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let mut workers = JoinSet::new();
    for _ in 0..parallel.min(n) {
        let (next, opened, setups) = (next.clone(), opened.clone(), setups.clone());
        workers.spawn_local(async move {
            while next.get() < n {
                let setup = setups[next.get() % setups.len()].clone();
                next.set(next.get() + 1);
                let subscriber = timeout(OPEN_ONE, Subscriber::open(transport, &setup))
                    .await
                    .map_err(|_| format!("a subscriber took over {OPEN_ONE:?} to subscribe"))??;
                opened.borrow_mut().push((setup, subscriber));
            }
            Ok::<(), String>(())
        });
    }
    let all = async {
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };
    let opened_count = || opened.borrow().len();
    timeout(OPEN_ALL, all).await.map_err(|_| {
        format!(
            "subscribing took over {OPEN_ALL:?} ({} of {n} done)",
            opened_count()
        )
    })??;
    Ok(opened.take())
}

/// `series` summed over the nodes' `/metrics`.
async fn metric_sum(options: &Options, series: &str) -> Result<f64, String> {
    let mut total = 0.0;
    for &node in &options.nodes {
        total += metric(node, series).await?;
    }
    Ok(total)
}

/// Waits until the server holds `n` long polls (with Nchan: has `n`
/// subscribers of any kind). (Their `since` makes a late one lose nothing;
/// this is so that the first publish finds them all waiting, and for
/// pacing.)
async fn wait_until_held(options: &Options, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + HELD;
    loop {
        let held = held(options).await?;
        if held >= n as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let what = match options.server {
                Server::Rtwire => "long polls",
                Server::Nchan => "subscribers (Nchan's channel info)",
            };
            return Err(format!(
                "the server holds {held} {what} of {n} after {HELD:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the server holds: rtwire's long polls from `/metrics`; for Nchan,
/// which has no `/metrics`, the subscribers its channel info counts.
async fn held(options: &Options) -> Result<f64, String> {
    match options.server {
        Server::Rtwire => {
            let series = r#"rtwire_sessions_open{transport="long_poll"}"#;
            metric_sum(options, series).await
        }
        // Bounded here: a GET that nginx never answered would otherwise
        // stop the loop above from ever looking at its deadline.
        Server::Nchan => {
            let ask = nchan::subscribers(options.addr, &options.host, CHANNEL);
            let count = timeout(HELD, ask)
                .await
                .map_err(|_| format!("Nchan's channel info took over {HELD:?}"))??;
            Ok(count as f64)
        }
    }
}

/// Starts every subscriber and the publisher now; returns when all
/// subscribers have every message, or at the deadline.
async fn measure(
    options: &Options,
    subscribers: Vec<Opened>,
    publisher: &mut Publisher,
) -> (Outcome, Phase) {
    let cpu = CpuTimes::now(&options.server_pids);
    let start = Instant::now();
    let deliveries = Rc::new(RefCell::new(Deliveries::default()));
    let mut tasks = spawn_all(subscribers, options.poll_interval, start, &deliveries);
    let lag = Rc::new(RefCell::new(Histogram::default()));
    let probe = tokio::task::spawn_local(probe_lag(lag.clone()));

    let mut outcome = Outcome::default();
    let publish = publisher.run(start, options.messages, options.size, options.rate);
    let drain = timeout_at(deadline(options, start), collect(&mut tasks, &mut outcome));
    let (published, _) = tokio::join!(publish, drain);
    let phase = Phase {
        length: start.elapsed(),
        cpu: CpuTimes::now(&options.server_pids).since(cpu),
    };

    probe.abort();
    outcome.loop_lag = lag.take();
    match published {
        Ok(slowest) => outcome.slowest_publish = slowest,
        Err(e) => outcome.publish_error = Some(e),
    }
    outcome.unfinished = tasks.len();
    tasks.abort_all();
    outcome.deliveries = deliveries.take();
    (outcome, phase)
}

/// What a subscriber's task ends with: its result, and itself.
type Finished = (Result<Report, String>, Subscriber);

/// One task per subscriber. Short pollers' first polls spread evenly over
/// one interval from `start`.
fn spawn_all(
    subscribers: Vec<Opened>,
    poll_interval: Duration,
    start: Instant,
    deliveries: &Rc<RefCell<Deliveries>>,
) -> JoinSet<Finished> {
    let mut tasks = JoinSet::new();
    let n = subscribers.len();
    for (i, (setup, mut subscriber)) in subscribers.into_iter().enumerate() {
        let first_poll = start + poll_interval.mul_f64(i as f64 / n as f64);
        let deliveries = deliveries.clone();
        tasks.spawn_local(async move {
            let result = subscriber.run(&setup, first_poll, &deliveries).await;
            (result, subscriber)
        });
    }
    tasks
}

/// When the missing deliveries count as lost: the last publish plus the
/// grace, plus one poll interval for short polling.
fn deadline(options: &Options, start: Instant) -> Instant {
    let last_publish = Duration::from_secs_f64(f64::from(options.messages - 1) / options.rate);
    let deadline = start + last_publish + options.grace;
    if options.transports[0] == Transport::Poll {
        deadline + options.poll_interval
    } else {
        deadline
    }
}

/// Records, every 10 ms, how late the event loop woke this task. The loop
/// runs every ready task before it looks at timers and sockets again, so
/// this is how long a delivery can sit unread in the tool's sockets while
/// the tool is busy with others: the part of the latency that is the
/// tool's own. (Tokio's timers tick in milliseconds: up to 1 ms of it is
/// rounding.)
async fn probe_lag(lag: Rc<RefCell<Histogram>>) {
    loop {
        let due = Instant::now() + Duration::from_millis(10);
        tokio::time::sleep_until(due).await;
        lag.borrow_mut().record(due.elapsed().as_nanos() as u64);
    }
}

/// Gathers the subscribers' results as they finish.
async fn collect(tasks: &mut JoinSet<Finished>, outcome: &mut Outcome) {
    while let Some(joined) = tasks.join_next().await {
        let (result, subscriber) = match joined {
            Ok(finished) => finished,
            Err(e) => {
                outcome.errors.push(e.to_string());
                continue;
            }
        };
        match result {
            Ok(report) => {
                outcome.finished += 1;
                outcome.traffic.sent += report.traffic.sent;
                outcome.traffic.received += report.traffic.received;
                outcome.requests += u64::from(report.requests);
            }
            Err(e) => outcome.errors.push(e),
        }
        outcome.done.push(subscriber);
    }
}

/// The measured phase: from the first publish to the last delivery (or
/// the deadline).
#[derive(Clone, Copy, Debug)]
struct Phase {
    length: Duration,
    cpu: CpuTimes,
}

/// Everything printed about one run.
struct Summary<'a> {
    options: &'a Options,
    transport: Transport,
    opened: Duration,
    /// Server VmRSS before any subscriber, with all, and at the end.
    empty: Option<u64>,
    subscribed: Option<u64>,
    end: Option<u64>,
    peak_kib: Option<u64>,
    phase: Phase,
    dropped: Option<f64>,
    outcome: &'a Outcome,
}

impl Summary<'_> {
    fn expected(&self) -> u64 {
        self.options.subscribers as u64 * u64::from(self.options.messages)
    }

    fn lost(&self) -> u64 {
        self.expected()
            .saturating_sub(self.outcome.deliveries.count)
    }

    fn share(&self, cpu: Option<f64>) -> String {
        cpu.map_or("n/a".into(), |c| {
            format!("{:.0}%", c / self.phase.length.as_secs_f64() * 100.0)
        })
    }

    /// The server's memory per subscriber: VmRSS with all subscribed
    /// minus before any, over their number.
    fn rss_per_subscriber(&self) -> String {
        match (self.empty, self.subscribed) {
            (Some(a), Some(b)) => format!(
                "{:.1} KiB",
                (b as f64 - a as f64) / self.options.subscribers as f64
            ),
            _ => "n/a".into(),
        }
    }

    /// Everything, for people and for scripts.
    fn print(&self) {
        self.print_results();
        self.print_row();
        self.print_result_line();
    }

    fn print_results(&self) {
        let (o, h) = (self.outcome, &self.outcome.deliveries.latency);
        let mib = |kib: Option<u64>| {
            kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        };
        println!(
            "subscribed in {:.1} s; server VmRSS {} before, {} subscribed ({} per subscriber), \
             {} at the end, peak {}",
            self.opened.as_secs_f64(),
            mib(self.empty),
            mib(self.subscribed),
            self.rss_per_subscriber(),
            mib(self.end),
            mib(self.peak_kib)
        );
        println!(
            "delivered {} of {} (lost {}); {} subscribers finished, {} failed, {} unfinished \
             at the deadline; subscribers the server dropped for lagging: {}",
            thousands(o.deliveries.count),
            thousands(self.expected()),
            thousands(self.lost()),
            o.finished,
            o.errors.len(),
            o.unfinished,
            self.dropped.map_or("n/a".into(), |d| d.to_string())
        );
        if o.unfinished > 0 && o.errors.is_empty() && self.dropped == Some(0.0) {
            println!(
                "(no subscriber failed or was dropped: the missing deliveries were late \
                 past the deadline, not refused)"
            );
        }
        println!(
            "latency: p50 {}  p99 {}  max {}  mean {}; the slowest publish took {}",
            duration_ns(h.quantile(0.5)),
            duration_ns(h.quantile(0.99)),
            duration_ns(h.max()),
            duration_ns(h.mean()),
            duration_ns(o.slowest_publish)
        );
        self.print_slowest_messages();
        let cpu = |c: Option<f64>| c.map_or("n/a".into(), |c| format!("{c:.2} s"));
        println!(
            "phase {:.1} s: server CPU {} ({} of a core), this tool {} ({}); \
             the tool's event loop ran late by p50 {}, p99 {}, max {}",
            self.phase.length.as_secs_f64(),
            cpu(self.phase.cpu.server),
            self.share(self.phase.cpu.server),
            cpu(self.phase.cpu.tool),
            self.share(self.phase.cpu.tool),
            duration_ns(o.loop_lag.quantile(0.5)),
            duration_ns(o.loop_lag.quantile(0.99)),
            duration_ns(o.loop_lag.max())
        );
        println!(
            "the rest of the machine (other programs, interrupts) used {} of a core over the phase",
            self.share(self.phase.cpu.others())
        );
        if o.finished > 0 {
            let deliveries = o.finished as f64 * f64::from(self.options.messages);
            println!(
                "finished subscribers: {} requests, {:.0} B per delivery server→client, {:.0} B client→server",
                thousands(o.requests),
                o.traffic.received as f64 / deliveries,
                o.traffic.sent as f64 / deliveries
            );
        }
        if let Some(e) = &o.publish_error {
            println!("error: publishing: {e}");
        }
        for e in o.errors.iter().take(5) {
            println!("error: {e}");
        }
    }

    /// The messages whose last delivery took longest: one message late
    /// everywhere is a stall of the server (or of the machine), lateness
    /// spread over many is the fan-out's own.
    fn print_slowest_messages(&self) {
        let slowest = &self.outcome.deliveries.slowest;
        let mut order: Vec<usize> = (0..slowest.len()).collect();
        order.sort_by_key(|&seq| std::cmp::Reverse(slowest[seq]));
        let mut sorted = slowest.clone();
        sorted.sort_unstable();
        let worst: Vec<String> = order
            .iter()
            .take(3)
            .map(|&seq| format!("#{seq} {}", duration_ns(slowest[seq])))
            .collect();
        println!(
            "last delivery of each message: median {}, slowest {}",
            duration_ns(sorted.get(sorted.len() / 2).copied().unwrap_or(0)),
            worst.join(", ")
        );
    }

    /// The row of the markdown table.
    fn print_row(&self) {
        let (o, h) = (self.outcome, &self.outcome.deliveries.latency);
        let mib =
            |kib: Option<u64>| kib.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0));
        let label = match self.transport {
            Transport::Poll => format!(
                "short polling, every {}",
                seconds(self.options.poll_interval)
            ),
            other => other.label().to_owned(),
        };
        println!(
            "row: | {label} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} → {} | {} | {} |",
            thousands(self.options.subscribers as u64),
            thousands(o.deliveries.count),
            thousands(self.expected()),
            thousands(self.lost()),
            duration_ns(h.quantile(0.5)),
            duration_ns(h.quantile(0.99)),
            duration_ns(h.max()),
            self.phase.cpu.server.map_or("n/a".into(), |c| format!("{c:.2}")),
            self.share(self.phase.cpu.server),
            self.share(self.phase.cpu.tool),
            duration_ns(o.loop_lag.quantile(0.99)),
            mib(self.subscribed),
            mib(self.peak_kib),
            self.rss_per_subscriber(),
            self.share(self.phase.cpu.others()),
        );
    }

    /// The same as `key=value` pairs, for scripts.
    fn print_result_line(&self) {
        let (o, h) = (self.outcome, &self.outcome.deliveries.latency);
        println!(
            "result: transport={} n={} delivered={} expected={} lost={} errors={} p50_ns={} p99_ns={} max_ns={} \
             phase_s={:.2} server_cpu_s={} client_cpu_s={} loop_lag_p99_ns={} others_cpu_s={} requests={}",
            self.transport.name(),
            self.options.subscribers,
            o.deliveries.count,
            self.expected(),
            self.lost(),
            o.errors.len() + usize::from(o.publish_error.is_some()),
            h.quantile(0.5),
            h.quantile(0.99),
            h.max(),
            self.phase.length.as_secs_f64(),
            self.phase.cpu.server.map_or("nan".into(), |c| format!("{c:.2}")),
            self.phase.cpu.tool.map_or("nan".into(), |c| format!("{c:.2}")),
            o.loop_lag.quantile(0.99),
            self.phase.cpu.others().map_or("nan".into(), |c| format!("{c:.2}")),
            o.requests
        );
    }

    /// Losses, errors and unfinished subscribers fail the run.
    fn verdict(&self) -> Result<(), String> {
        let o = self.outcome;
        if self.lost() == 0 && o.errors.is_empty() && o.publish_error.is_none() && o.unfinished == 0
        {
            Ok(())
        } else {
            Err(format!(
                "{} deliveries lost, {} subscribers failed, {} unfinished",
                self.lost(),
                o.errors.len(),
                o.unfinished
            ))
        }
    }
}
