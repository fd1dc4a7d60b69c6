//! What one fan-out delivery costs the kernel, and what io_uring saves of
//! it: the sender thread writes `--size` bytes to each of `--sockets`
//! loopback TCP connections per round, as a server fans one message out,
//! either with one `send(2)` per socket or with all of a round's sends
//! submitted to an io_uring at once; a reader thread on the other core
//! drains the connections, as the subscribers would. The modes alternate
//! round by round, so that a drift of the machine hits both alike.
//!
//! It prints the sender thread's CPU time per send (user + system, from
//! `CLOCK_THREAD_CPUTIME_ID` around each round's sends, which includes the
//! loopback delivery the kernel runs in the sender's context), median and
//! quartiles over the rounds. See benches/README.md.
//!
//! ```sh
//! benches/load/target/release/rtwire-sendcost --sockets 5000 --rounds 40
//! ```

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

struct Args {
    sockets: usize,
    rounds: usize,
    size: usize,
    sender_cpu: usize,
    reader_cpu: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sockets: 5000,
        rounds: 40,
        size: 172,
        sender_cpu: 0,
        reader_cpu: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, String> {
            it.next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--sockets" => args.sockets = value()?,
            "--rounds" => args.rounds = value()?,
            "--size" => args.size = value()?,
            "--sender-cpu" => args.sender_cpu = value()?,
            "--reader-cpu" => args.reader_cpu = value()?,
            "-h" | "--help" => {
                println!(
                    "rtwire-sendcost [--sockets N (5000)] [--rounds R (40)] [--size B (172)] \
                     [--sender-cpu C (0)] [--reader-cpu C (1)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.sockets == 0 || args.rounds == 0 || args.size == 0 {
        return Err("--sockets, --rounds and --size must be at least 1".into());
    }
    Ok(args)
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and
    // sched_setaffinity only reads the set passed by reference.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            eprintln!(
                "rtwire-sendcost: cannot pin to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// This thread's CPU time (user + system), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The reader: drains every connection (nonblocking, one epoll), adding
/// what it reads to `received`.
fn drain(streams: Vec<TcpStream>, received: Arc<AtomicU64>, cpu: usize) {
    pin(cpu);
    // SAFETY: epoll_create1 takes flags only.
    let epoll = unsafe { libc::epoll_create1(0) };
    assert!(epoll >= 0, "epoll_create1: {}", io::Error::last_os_error());
    for (i, stream) in streams.iter().enumerate() {
        stream.set_nonblocking(true).expect("nonblocking");
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: the event is valid for the call; the fd is open.
        let rc =
            unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut event) };
        assert_eq!(rc, 0, "epoll_ctl: {}", io::Error::last_os_error());
    }
    let mut streams = streams;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = [0u8; 64 * 1024];
    loop {
        // SAFETY: the buffer holds `events.len()` events.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue; // EINTR
        }
        for event in &events[..n as usize] {
            let stream = &mut streams[event.u64 as usize];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return, // the sender is done
                    Ok(n) => {
                        received.fetch_add(n as u64, Ordering::Release);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return,
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Send,
    Uring,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Send => "send(2) per socket",
            Mode::Uring => "io_uring, one submit per round",
        }
    }
}

/// One round of `mode`: `payload` to every socket; the CPU time it took.
fn round(mode: Mode, fds: &[i32], payload: &[u8], ring: &mut IoUring) -> io::Result<u64> {
    let start = thread_cpu_ns();
    match mode {
        Mode::Send => {
            for &fd in fds {
                // SAFETY: the payload outlives the call; fd is an open socket.
                let n = unsafe {
                    libc::send(
                        fd,
                        payload.as_ptr().cast(),
                        payload.len(),
                        libc::MSG_NOSIGNAL,
                    )
                };
                if n != payload.len() as isize {
                    return Err(io::Error::other(format!("send wrote {n}")));
                }
            }
        }
        Mode::Uring => {
            let depth = ring.params().sq_entries() as usize;
            for chunk in fds.chunks(depth) {
                {
                    let mut sq = ring.submission();
                    for &fd in chunk {
                        let send = opcode::Send::new(
                            types::Fd(fd),
                            payload.as_ptr(),
                            payload.len() as u32,
                        )
                        .flags(libc::MSG_NOSIGNAL)
                        .build();
                        // SAFETY: the payload outlives the operation: this
                        // function waits for every completion below.
                        unsafe { sq.push(&send) }.map_err(|_| io::Error::other("ring full"))?;
                    }
                }
                ring.submit_and_wait(chunk.len())?;
                let mut done = 0;
                while done < chunk.len() {
                    for cqe in ring.completion() {
                        if cqe.result() != payload.len() as i32 {
                            return Err(io::Error::other(format!("send: {}", cqe.result())));
                        }
                        done += 1;
                    }
                    if done < chunk.len() {
                        ring.submit_and_wait(chunk.len() - done)?;
                    }
                }
            }
        }
    }
    Ok(thread_cpu_ns() - start)
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

fn main() -> io::Result<()> {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("rtwire-sendcost: {e}");
        std::process::exit(2);
    });
    raise_fd_limit(2 * args.sockets as u64 + 64);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut senders = Vec::with_capacity(args.sockets);
    let mut readers = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let sender = TcpStream::connect(addr)?;
        sender.set_nodelay(true)?;
        senders.push(sender);
        readers.push(listener.accept()?.0);
    }
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = received.clone();
        let cpu = args.reader_cpu;
        std::thread::spawn(move || drain(readers, received, cpu))
    };
    pin(args.sender_cpu);
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .build(4096)
        .or_else(|_| IoUring::new(4096))?;
    let fds: Vec<i32> = senders.iter().map(|s| s.as_raw_fd()).collect();
    let payload = vec![b'x'; args.size];
    let modes = [Mode::Send, Mode::Uring];
    let mut per_send: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut expected = 0u64;
    // Two rounds each of warm-up, then the measured ones.
    for i in 0..(args.rounds + 2) * 2 {
        let mode = modes[i % 2];
        let ns = round(mode, &fds, &payload, &mut ring)?;
        expected += (args.size * fds.len()) as u64;
        // Until the reader has it all, and is idle again in epoll_wait, as
        // subscribers are between messages: every round starts alike.
        while received.load(Ordering::Acquire) < expected {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        if i >= 4 {
            per_send[i % 2].push(ns as f64 / fds.len() as f64 / 1000.0);
        }
    }
    drop(senders);
    let _ = reader.join();
    println!(
        "{} sockets x {} rounds of {} B, sender on CPU {}, reader on CPU {}",
        args.sockets, args.rounds, args.size, args.sender_cpu, args.reader_cpu
    );
    println!("| how | CPU per send, median | quartiles |");
    println!("| --- | --: | --: |");
    let mut medians = [0.0; 2];
    for (i, mode) in modes.iter().enumerate() {
        let (q1, median, q3) = quartiles(per_send[i].clone());
        medians[i] = median;
        println!(
            "| {} | {median:.2} µs | {q1:.2} – {q3:.2} µs |",
            mode.name()
        );
    }
    println!("io_uring / send: {:.2}", medians[1] / medians[0]);
    Ok(())
}
