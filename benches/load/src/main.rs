//! `rtwire-load`: drives any WebSocket echo server on loopback.
//!
//! C connections each keep W messages of S bytes in flight: every echo that
//! comes back is timed and replaced by a new message, through a warm-up and
//! then a measured duration. It prints messages/s, MB/s and round-trip
//! percentiles, and (given the server's pid) the CPU time both sides spent.
//! With `--idle` it instead opens C connections, sends nothing, and reports
//! the server's resident memory per connection.
//!
//! The client is built to cost little: one thread, one task per
//! connection, frames built once and shared by all connections (the same
//! masking key for every frame), echoes skipped through a fixed buffer
//! without being assembled.

mod wire;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rtwire_load::histogram::Histogram;
use rtwire_load::sys::{cpu_seconds, vm_rss_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::{JoinSet, LocalSet};
use wire::{Outgoing, Reader, Update};

const USAGE: &str = "\
usage: rtwire-load [--url ws://127.0.0.1:PORT/PATH | --port PORT] [options]
  -c, --connections C   connections (default 100)
  -s, --size S          payload bytes per message; K/KiB and M/MiB suffixes (default 20)
  -w, --inflight W      messages in flight per connection (default 1)
      --warmup SECS     warm-up before measuring (default 2)
  -d, --duration SECS   measured duration (default 10)
      --text            send text messages (default binary)
      --verify          compare every echoed byte with what was sent
      --server-pid PID  report the server's CPU time and resident memory
      --idle            open C connections, send nothing, and report the
                        server's VmRSS per connection (needs --server-pid)
      --settle SECS     with --idle: wait this long before reading VmRSS (default 1)
      --open-parallel N handshakes in progress at once (default 64)
Only loopback addresses (127.0.0.0/8, ::1) are accepted. Every phase is
bounded in time; the tool exits by itself.";

#[derive(Clone, Debug)]
struct Options {
    addr: SocketAddr,
    host_header: String,
    path: String,
    connections: usize,
    size: usize,
    inflight: usize,
    warmup: Duration,
    duration: Duration,
    text: bool,
    verify: bool,
    server_pid: Option<u32>,
    idle: bool,
    settle: Duration,
    open_parallel: usize,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("rtwire-load: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match rtwire_load::sys::runtime_for(options.connections) {
        Ok(runtime) => runtime,
        Err(message) => {
            eprintln!("rtwire-load: {message}");
            return ExitCode::FAILURE;
        }
    };
    let local = LocalSet::new();
    let result = if options.idle {
        local.block_on(&runtime, idle(options))
    } else {
        local.block_on(&runtime, load(options))
    };
    // Tasks still running (a server that stopped answering) end here.
    drop(local);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rtwire-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut url = None;
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
        host_header: String::new(),
        path: "/".into(),
        connections: 100,
        size: 20,
        inflight: 1,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(10),
        text: false,
        verify: false,
        server_pid: None,
        idle: false,
        settle: Duration::from_secs(1),
        open_parallel: 64,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?.to_owned()),
            "--port" => url = Some(format!("ws://127.0.0.1:{}/", value()?)),
            "-c" | "--connections" => options.connections = parse_count(value()?)?,
            "-s" | "--size" => options.size = parse_size(value()?)?,
            "-w" | "--inflight" => options.inflight = parse_count(value()?)?,
            "--warmup" => options.warmup = parse_secs(value()?)?,
            "-d" | "--duration" => options.duration = parse_secs(value()?)?,
            "--text" => options.text = true,
            "--verify" => options.verify = true,
            "--server-pid" => {
                let v = value()?;
                options.server_pid = Some(v.parse().map_err(|_| format!("bad pid {v:?}"))?);
            }
            "--idle" => options.idle = true,
            "--settle" => options.settle = parse_secs(value()?)?,
            "--open-parallel" => options.open_parallel = parse_count(value()?)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let url = url.unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let (addr, host_header, path) = parse_url(&url)?;
    options.addr = addr;
    options.host_header = host_header;
    options.path = path;
    if options.connections == 0 || options.inflight == 0 || options.open_parallel == 0 {
        return Err("counts must be at least 1".into());
    }
    if options.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if options.idle && options.server_pid.is_none() {
        return Err("--idle needs --server-pid".into());
    }
    Ok(options)
}

fn parse_count(v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("bad count {v:?}"))
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    let secs: f64 = v.parse().map_err(|_| format!("bad seconds {v:?}"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("seconds out of range: {v}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_size(v: &str) -> Result<usize, String> {
    let lower = v.to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: usize = digits.parse().map_err(|_| format!("bad size {v:?}"))?;
    let unit = match unit {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        _ => return Err(format!("bad size unit in {v:?}")),
    };
    n.checked_mul(unit)
        .filter(|&n| n <= 1 << 30)
        .ok_or_else(|| format!("size too large: {v}"))
}

/// `ws://HOST:PORT/PATH` with a loopback HOST; nothing else is a target.
fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("only ws:// URLs: {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port: u16 = p.parse().map_err(|_| format!("bad port in {url:?}"))?;
            (h, port)
        }
        _ => (authority, 80),
    };
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("host must be a loopback IP address: {host:?}"))?,
    };
    if !ip.is_loopback() {
        return Err(format!("refusing a non-loopback target {ip}"));
    }
    Ok((SocketAddr::new(ip, port), authority.to_owned(), path))
}

// ----- opening connections -----

/// Connects and does the client's opening handshake; returns the stream
/// and any bytes read past the response head.
async fn open(options: &Options) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(options.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", options.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let key = rtwire::handshake::generate_key();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        options.path, options.host_header
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut head = Vec::with_capacity(512);
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 16 << 10 {
            return Err("handshake response head too long".into());
        }
        let n = stream
            .read_buf(&mut head)
            .await
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("connection closed during the handshake".into());
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status:?}"));
    }
    let expected = rtwire::handshake::accept_key(&key);
    let accepted = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
        })
    });
    if !accepted {
        return Err("handshake response without the right Sec-WebSocket-Accept".into());
    }
    Ok((stream, head[end..].to_vec()))
}

/// Opens `options.connections` connections, `open_parallel` at a time, all
/// within 60 s.
async fn open_all(options: &Options) -> Result<Vec<(TcpStream, Vec<u8>)>, String> {
    let next = Rc::new(RefCell::new(0usize));
    let opened = Rc::new(RefCell::new(Vec::with_capacity(options.connections)));
    let mut workers = JoinSet::new();
    for _ in 0..options.open_parallel.min(options.connections) {
        let (next, opened, options) = (next.clone(), opened.clone(), options.clone());
        workers.spawn_local(async move {
            loop {
                {
                    let mut n = next.borrow_mut();
                    if *n >= options.connections {
                        return Ok::<(), String>(());
                    }
                    *n += 1;
                }
                let conn = tokio::time::timeout(Duration::from_secs(10), open(&options))
                    .await
                    .map_err(|_| "handshake timed out after 10 s".to_owned())??;
                opened.borrow_mut().push(conn);
            }
        });
    }
    let all = async {
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .map_err(|_| "opening the connections took over 60 s".to_owned())??;
    let opened = opened.take();
    Ok(opened)
}

// ----- idle memory -----

async fn idle(options: Options) -> Result<(), String> {
    let pid = options.server_pid.expect("checked in parse_args");
    let before = vm_rss_kib(pid)?;
    let started = Instant::now();
    let conns = open_all(&options).await?;
    let open_time = started.elapsed();
    tokio::time::sleep(options.settle).await;
    let after = vm_rss_kib(pid)?;
    let per_conn = (after as f64 - before as f64) / conns.len() as f64;
    println!(
        "rtwire-load: {} idle connections to ws://{}{} opened in {:.2} s",
        conns.len(),
        options.host_header,
        options.path,
        open_time.as_secs_f64()
    );
    println!(
        "server VmRSS: {before} KiB before, {after} KiB with the connections open: \
         {per_conn:.2} KiB per connection"
    );
    println!("result: connections={} rss_before_kib={before} rss_after_kib={after} rss_per_conn_kib={per_conn:.2}", conns.len());
    // Close politely but do not wait: best effort, then drop.
    let close = wire::close_frame();
    for (stream, _) in &conns {
        let _ = stream.try_write(&close);
    }
    drop(conns);
    Ok(())
}

// ----- load -----

/// Counters shared by the connection tasks (one thread: RefCell is enough).
#[derive(Default)]
struct Stats {
    messages: u64,
    round_trips: Histogram,
    errors: Vec<String>,
    bad_echoes: u64,
}

struct Plan {
    warm_end: Instant,
    end: Instant,
}

async fn load(options: Options) -> Result<(), String> {
    let outgoing = Rc::new(Outgoing::new(options.size, options.inflight, options.text));
    let conns = open_all(&options).await?;
    let start = Instant::now();
    let plan = Rc::new(Plan {
        warm_end: start + options.warmup,
        end: start + options.warmup + options.duration,
    });
    let stats = Rc::new(RefCell::new(Stats::default()));
    let mut tasks = JoinSet::new();
    for (stream, leftover) in conns {
        let (outgoing, plan, stats, options) = (
            outgoing.clone(),
            plan.clone(),
            stats.clone(),
            options.clone(),
        );
        tasks.spawn_local(async move {
            let result = drive(stream, leftover, &outgoing, &plan, &stats, &options).await;
            if let Err(e) = result {
                stats.borrow_mut().errors.push(e);
            }
        });
    }
    // CPU time over the measured window only.
    tokio::time::sleep_until(plan.warm_end.into()).await;
    let cpu_start = (
        cpu_seconds(None),
        options.server_pid.and_then(|p| cpu_seconds(Some(p))),
    );
    tokio::time::sleep_until(plan.end.into()).await;
    let cpu_end = (
        cpu_seconds(None),
        options.server_pid.and_then(|p| cpu_seconds(Some(p))),
    );
    let rss_under_load = options.server_pid.and_then(|p| vm_rss_kib(p).ok());
    // In-flight echoes get a grace period to come back, then tasks are dropped.
    let grace = Duration::from_secs(5).max(options.duration / 2);
    let unfinished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err();
    if unfinished {
        tasks.abort_all();
    }

    let window = options.duration.as_secs_f64();
    let stats = stats.borrow();
    let msgs_per_s = stats.messages as f64 / window;
    let mb_per_s = msgs_per_s * options.size as f64 / 1e6;
    let h = &stats.round_trips;
    let us = |ns: u64| ns as f64 / 1000.0;
    let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (b - a) / window * 100.0,
        _ => f64::NAN,
    };
    let client_cpu = share(cpu_start.0, cpu_end.0);
    let server_cpu = share(cpu_start.1, cpu_end.1);
    println!(
        "rtwire-load: ws://{}{}  {} connections x {} B, {} in flight each, warm-up {:.1} s, measured {:.1} s",
        options.host_header,
        options.path,
        options.connections,
        options.size,
        options.inflight,
        options.warmup.as_secs_f64(),
        window
    );
    println!(
        "throughput: {} messages, {msgs_per_s:.0} msgs/s, {mb_per_s:.2} MB/s of payload each way",
        stats.messages
    );
    println!(
        "round trip: p50 {:.1} us  p99 {:.1} us  p999 {:.1} us  max {:.1} us  mean {:.1} us ({} samples)",
        us(h.quantile(0.5)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        us(h.mean()),
        h.len()
    );
    println!(
        "cpu over the measured window: load tool {client_cpu:.0}% of a core, server {server_cpu:.0}%"
    );
    if let Some(rss) = rss_under_load {
        println!("server VmRSS at the end of the window: {rss} KiB");
    }
    if unfinished {
        println!("warning: some connections did not finish within {grace:?} after the window");
    }
    if stats.bad_echoes > 0 {
        println!(
            "error: {} echoes differed from what was sent",
            stats.bad_echoes
        );
    }
    for e in stats.errors.iter().take(5) {
        println!("error: {e}");
    }
    println!(
        "result: msgs_per_s={msgs_per_s:.1} mb_per_s={mb_per_s:.3} p50_us={:.1} p99_us={:.1} p999_us={:.1} \
         client_cpu={client_cpu:.1} server_cpu={server_cpu:.1} server_rss_kib={} errors={}",
        us(h.quantile(0.5)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        rss_under_load.map_or_else(|| "nan".to_owned(), |r| r.to_string()),
        stats.errors.len() as u64 + stats.bad_echoes + u64::from(unfinished)
    );
    if stats.errors.is_empty() && stats.bad_echoes == 0 && !unfinished {
        Ok(())
    } else {
        Err("the run had errors".into())
    }
}

/// One connection: keeps `inflight` messages outstanding until the end of
/// the window, then waits for the last echoes and closes.
async fn drive(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    outgoing: &Outgoing,
    plan: &Plan,
    stats: &RefCell<Stats>,
    options: &Options,
) -> Result<(), String> {
    let (mut rd, mut wr) = stream.split();
    let mut reader = Reader::new(outgoing, options.verify, leftover);
    let mut sent_at: std::collections::VecDeque<Instant> =
        std::collections::VecDeque::with_capacity(options.inflight);
    // Frames queued and not yet fully written; `offset` into the first.
    let mut queued = 0usize;
    let mut offset = 0usize;
    let mut now = Instant::now();
    loop {
        if now < plan.end {
            while sent_at.len() < options.inflight {
                sent_at.push_back(now);
                queued += 1;
            }
        } else if sent_at.is_empty() {
            break;
        }
        let update = if queued > 0 {
            let chunk = outgoing.chunk(queued, offset);
            tokio::select! {
                biased;
                read = reader.read_from(&mut rd) => read?,
                written = wr.write(chunk) => {
                    let n = written.map_err(|e| format!("write: {e}"))?;
                    if n == 0 {
                        return Err("write returned 0".into());
                    }
                    let (frames, rest) = outgoing.advance(offset, n);
                    queued -= frames;
                    offset = rest;
                    Update::default()
                }
            }
        } else {
            reader.read_from(&mut rd).await?
        };
        if update.closed {
            return Err("the server closed the connection".into());
        }
        // The clock is read once per read that completed messages: every
        // echo in it arrived at the same time, and new messages (the only
        // thing stamped) are queued only after such a read.
        if update.messages > 0 {
            now = Instant::now();
            let mut stats = stats.borrow_mut();
            stats.bad_echoes += update.bad; // counted whatever the time
            for _ in 0..update.messages {
                let Some(sent) = sent_at.pop_front() else {
                    return Err("an echo arrived that was never sent".into());
                };
                if now >= plan.warm_end && now < plan.end {
                    stats.messages += 1;
                    stats.round_trips.record((now - sent).as_nanos() as u64);
                }
            }
        }
    }
    let _ = wr.write_all(&wire::close_frame()).await;
    Ok(())
}
