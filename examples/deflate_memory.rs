//! Measures the resident memory that permessage-deflate costs per
//! connection: N server connections each inflate one message from a client
//! and compress one reply, then sit idle with whatever state they keep.
//! Each configuration is measured in a fresh process of its own, so memory
//! freed by one cannot hide what the next one costs.
//!
//! ```text
//! cargo run --release --example deflate_memory [N]
//! ```

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Config, Connection, Event, Message, Role};

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn payload() -> String {
    (0..100)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"user\":\"user{}\",\"text\":\"hello world\"}},",
                i % 7
            )
        })
        .collect()
}

/// Opens `n` connections under `config` (or without the extension) and
/// returns the resident KiB each one holds once idle.
fn measure(n: usize, config: Option<&DeflateConfig>) -> f64 {
    let text = payload();
    let before = resident_kib();
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut server = Connection::new(Role::Server, Config::default());
        let mut client = Connection::new(Role::Client, Config::default());
        if let Some(config) = config {
            let (agreed, answer) = config
                .accept_offers([config.offer().as_str()])
                .expect("offer accepted");
            server = server.with_deflate(agreed);
            client = client.with_deflate(config.check_response(&answer).expect("answer valid"));
        }
        client.send(Message::text(text.clone())).expect("send");
        while let Some(bytes) = client.poll_transmit() {
            server.receive_data(&bytes);
        }
        match server.poll_event() {
            Some(Event::Message(message)) => server.send(message).expect("echo"),
            other => panic!("unexpected {other:?}"),
        }
        while server.poll_transmit().is_some() {}
        // What `WebSocket` does once the transport has nothing to read.
        server.release_idle_buffers();
        servers.push(server);
    }
    let after = resident_kib();
    drop(servers);
    (after.saturating_sub(before)) as f64 / n as f64
}

fn configurations() -> [(&'static str, Option<DeflateConfig>); 4] {
    [
        ("no compression", None),
        (
            "permessage-deflate, default (15-bit windows, context takeover)",
            Some(DeflateConfig::default()),
        ),
        (
            "permessage-deflate, server_no_context_takeover only",
            Some(DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            }),
        ),
        (
            "permessage-deflate, lean (9-bit windows, no context takeover)",
            Some(DeflateConfig::lean()),
        ),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    // A child measures one configuration and prints its figure.
    if let Some(index) = args.next().and_then(|a| a.parse::<usize>().ok()) {
        let (_, config) = &configurations()[index];
        println!("{:.1}", measure(n, config.as_ref()));
        return;
    }
    println!("resident memory per idle server connection, {n} connections:");
    let exe = std::env::current_exe().expect("own path");
    for (index, (name, _)) in configurations().iter().enumerate() {
        let out = std::process::Command::new(&exe)
            .args([n.to_string(), index.to_string()])
            .output()
            .expect("run a measurement");
        let figure = String::from_utf8_lossy(&out.stdout);
        println!("  {:<66} {:>8} KiB", name, figure.trim());
    }
}
