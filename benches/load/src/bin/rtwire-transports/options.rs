//! The command line.

use std::net::SocketAddr;
use std::time::Duration;

use crate::subscriber::Transport;

pub const USAGE: &str = "\
usage: rtwire-transports cost --port PORT [options]
       rtwire-transports fanout --port PORT --transport T [-n N] [options]
       rtwire-transports fanout --server nchan --port PORT --transport T [-n N] [options]
       rtwire-transports publish --port PORT [--publishers C] [--duration S] [-s BYTES]

  cost     one subscriber per transport receives M messages: bytes on the
           wire both ways, HTTP requests; then the idle cost per hour
  fanout   N subscribers of one transport, M messages: delivery latency,
           losses, the server's CPU time and memory
  publish  C publishers post to one channel as fast as it answers, for S
           seconds after a second of warm-up: publishes per second, the
           server's CPU time per publish

  --port PORT            the server on 127.0.0.1:PORT (required)
      --server S         fanout, publish: rtwire (default) or nchan: nginx with Nchan,
                         publishing to /pub/room and subscribing on /sub/room
                         (ws, sse or long-poll only)
  --transports LIST      cost: comma-separated (default poll,long-poll,sse,ws,ws-deflate)
  --transport T          fanout: poll, long-poll, sse, ws or ws-deflate
  -n, --subscribers N    fanout: subscribers, one connection each (default 1000)
  -m, --messages M       messages published (cost 100, fanout 50)
  -s, --size BYTES       payload size, at least 28 (default 100)
  -r, --rate R           messages published per second (cost 10, fanout 5)
      --poll-interval S  short polling interval in seconds (default 5)
      --no-idle          cost: skip the idle measurement
      --idle-long-poll-timeout S
                         cost: ask the idle long poll for timeout=S (default:
                         no parameter, the server's default of 30 s)
      --server-pid PID   fanout: report the server's CPU time and memory; given
                         more than once (nodes, Redis), their sums
      --subscribe-ports LIST
                         fanout: comma-separated ports of the nodes the
                         subscribers connect to, in turn (default: --port,
                         which the publisher always uses); for nodes that
                         share one hub through Redis
      --open-parallel N  fanout: subscribers connecting at once (default 64)
      --publishers C     publish: keep-alive connections posting (default 16)
      --duration S       publish: the measured window (default 10)
      --grace S          fanout: wait for deliveries this long after the last
                         publish (plus the poll interval for short polling)
                         before counting the missing ones lost (default 10)
Only 127.0.0.1 is a target. Every phase is bounded in time.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Cost,
    Fanout,
    Publish,
}

/// The server measured: the same load and the same measurements on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `rtwire serve`.
    Rtwire,
    /// nginx with Nchan, configured as benches/nchan.conf.in: `POST
    /// /pub/CHANNEL` publishes, `/sub/CHANNEL` subscribes (WebSocket,
    /// EventSource, long polling).
    Nchan,
}

impl Server {
    fn parse(name: &str) -> Result<Server, String> {
        match name {
            "rtwire" => Ok(Server::Rtwire),
            "nchan" => Ok(Server::Nchan),
            _ => Err(format!("unknown server {name:?} (rtwire, nchan)")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub server: Server,
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Cost: the transports to measure; fanout: the one.
    pub transports: Vec<Transport>,
    pub subscribers: usize,
    pub messages: u32,
    pub size: usize,
    pub rate: f64,
    pub poll_interval: Duration,
    pub idle: bool,
    pub idle_long_poll_timeout: Option<u64>,
    /// The server's processes: every node, and Redis if it has one.
    pub server_pids: Vec<u32>,
    /// Where subscribers connect, in turn: the publisher's node first.
    pub nodes: Vec<SocketAddr>,
    pub open_parallel: usize,
    pub grace: Duration,
    /// Publish: connections posting at once, and for how long.
    pub publishers: usize,
    pub duration: Duration,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let (mode, rest) = match args.split_first() {
        Some((m, rest)) if m == "cost" => (Mode::Cost, rest),
        Some((m, rest)) if m == "fanout" => (Mode::Fanout, rest),
        Some((m, rest)) if m == "publish" => (Mode::Publish, rest),
        _ => return Err("the first argument is the mode: cost, fanout or publish".into()),
    };
    let mut port = None;
    let mut transports = None;
    let mut messages = None;
    let mut rate = None;
    let mut subscribe_ports = None;
    let mut options = Options {
        mode,
        server: Server::Rtwire,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        host: String::new(),
        transports: Vec::new(),
        subscribers: 1000,
        messages: 0,
        size: 100,
        rate: 0.0,
        poll_interval: Duration::from_secs(5),
        idle: true,
        idle_long_poll_timeout: None,
        server_pids: Vec::new(),
        nodes: Vec::new(),
        open_parallel: 64,
        grace: Duration::from_secs(10),
        publishers: 16,
        duration: Duration::from_secs(10),
    };
    let mut args = rest.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => port = Some(number::<u16>(value()?)?),
            "--server" => options.server = Server::parse(value()?)?,
            "--transports" | "--transport" => {
                let list = value()?.split(',').map(Transport::parse);
                transports = Some(list.collect::<Result<Vec<_>, _>>()?);
            }
            "-n" | "--subscribers" => options.subscribers = number(value()?)?,
            "-m" | "--messages" => messages = Some(number(value()?)?),
            "-s" | "--size" => options.size = number(value()?)?,
            "-r" | "--rate" => rate = Some(number(value()?)?),
            "--poll-interval" => options.poll_interval = seconds(value()?)?,
            "--no-idle" => options.idle = false,
            "--idle-long-poll-timeout" => {
                options.idle_long_poll_timeout = Some(number(value()?)?);
            }
            "--server-pid" => options.server_pids.push(number(value()?)?),
            "--subscribe-ports" => {
                let list = value()?.split(',').map(number::<u16>);
                subscribe_ports = Some(list.collect::<Result<Vec<_>, _>>()?);
            }
            "--open-parallel" => options.open_parallel = number(value()?)?,
            "--grace" => options.grace = seconds(value()?)?,
            "--publishers" => options.publishers = number(value()?)?,
            "--duration" => options.duration = seconds(value()?)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    options.addr = SocketAddr::from(([127, 0, 0, 1], port));
    options.host = options.addr.to_string();
    options.nodes = subscribe_ports
        .unwrap_or_else(|| vec![port])
        .into_iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let (default_messages, default_rate) = match mode {
        Mode::Cost => (100, 10.0),
        Mode::Fanout | Mode::Publish => (50, 5.0),
    };
    options.messages = messages.unwrap_or(default_messages);
    options.rate = rate.unwrap_or(default_rate);
    options.transports = match (mode, transports) {
        (Mode::Cost, None) => Transport::ALL.to_vec(),
        (Mode::Cost, Some(list)) => list,
        (Mode::Fanout, Some(list)) if list.len() == 1 => list,
        (Mode::Fanout, _) => return Err("fanout needs exactly one --transport".into()),
        (Mode::Publish, _) => Vec::new(),
    };
    check(&options)?;
    Ok(options)
}

fn check(options: &Options) -> Result<(), String> {
    if options.size < crate::payload::HEADER {
        return Err(format!(
            "--size must be at least {}",
            crate::payload::HEADER
        ));
    }
    if options.messages == 0 || options.subscribers == 0 || options.open_parallel == 0 {
        return Err("counts must be at least 1".into());
    }
    if !(options.rate > 0.0 && options.rate <= 10_000.0) {
        return Err("--rate must be in (0, 10000]".into());
    }
    if options.poll_interval.is_zero() {
        return Err("--poll-interval must be positive".into());
    }
    if options.publishers == 0 || options.duration.is_zero() {
        return Err("--publishers and --duration must be at least 1".into());
    }
    if options.server == Server::Nchan {
        check_nchan(options)?;
    }
    Ok(())
}

/// What the Nchan mode offers: the fan-out of the transports both servers
/// have, on one server.
fn check_nchan(options: &Options) -> Result<(), String> {
    if options.mode == Mode::Publish {
        return Ok(());
    }
    if options.mode != Mode::Fanout {
        return Err("--server nchan: fanout only (the wire cost counts rtwire's envelopes)".into());
    }
    let why = match options.transports[0] {
        Transport::Ws | Transport::Sse | Transport::LongPoll => None,
        // Nchan's interval poll asks for the next message and is answered
        // 304 until it is there: not rtwire's poll for all since an id.
        Transport::Poll => Some("Nchan's interval polling is not rtwire's short poll"),
        // Nchan compresses only with nchan_deflate_message_for_websocket,
        // with settings of its own: not comparable with rtwire's.
        Transport::WsDeflate => Some("Nchan's permessage-deflate is configured apart"),
    };
    if let Some(why) = why {
        return Err(format!(
            "--server nchan: transport {} is not offered (ws, sse or long-poll): {why}",
            options.transports[0].name()
        ));
    }
    if options.nodes != [options.addr] {
        return Err("--server nchan: one server, no --subscribe-ports".into());
    }
    Ok(())
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad number {v:?}"))
}

fn seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = number(v)?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("seconds out of range: {v}"));
    }
    Ok(Duration::from_secs_f64(secs))
}
