//! `publish`: how many messages `rtwire serve` accepts per second on one
//! channel, from C publishers on keep-alive connections each posting the
//! next message as soon as the last is answered, for D seconds; with the
//! server's CPU time per publish. (With subscribers, a publish costs its
//! fan-out too: `fanout` and its burst measure that.)

use std::cell::Cell;
use std::rc::Rc;

use rtwire_load::sys::cpu_seconds;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::options::Options;
use crate::publisher::Publisher;

/// The channel published to.
const CHANNEL: &str = "room";

pub async fn run(options: &Options) -> Result<(), String> {
    let body = vec![b'x'; options.size];
    let mut publishers = Vec::with_capacity(options.publishers);
    for _ in 0..options.publishers {
        publishers
            .push(Publisher::connect(options.addr, &options.host, CHANNEL, options.server).await?);
    }
    // A second of warm-up on every connection, then the measured window.
    let warm_up = Instant::now() + std::time::Duration::from_secs(1);
    let end = warm_up + options.duration;
    let counted = Rc::new(Cell::new(0u64));
    let cpu_at_start = Rc::new(Cell::new(None::<f64>));
    let mut tasks = JoinSet::new();
    for mut publisher in publishers {
        let (body, counted) = (body.clone(), counted.clone());
        tasks.spawn_local(async move {
            loop {
                publisher.publish(&body).await?;
                let now = Instant::now();
                if now >= end {
                    return Ok::<(), String>(());
                }
                if now >= warm_up {
                    counted.set(counted.get() + 1);
                }
            }
        });
    }
    let pids = options.server_pids.clone();
    let start = cpu_at_start.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep_until(warm_up).await;
        start.set(server_cpu(&pids));
    });
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let cpu = server_cpu(&options.server_pids)
        .zip(cpu_at_start.get())
        .map(|(end, start)| end - start);
    let n = counted.get();
    let seconds = options.duration.as_secs_f64();
    let per_publish = cpu.map_or("n/a".to_owned(), |c| {
        format!("{:.2} µs", c * 1e6 / n.max(1) as f64)
    });
    let cpu_text = cpu.map_or("n/a".to_owned(), |c| format!("{c:.2}"));
    println!(
        "rtwire-transports publish: {} publishers, {} B payloads, {:.0} s",
        options.publishers, options.size, seconds
    );
    println!(
        "row: | {} | {} | {} | {:.0} | {} | {} |",
        options.publishers,
        options.size,
        n,
        n as f64 / seconds,
        cpu_text,
        per_publish
    );
    println!(
        "result: publishers={} size={} publishes={n} per_s={:.1} server_cpu_s={cpu_text}",
        options.publishers,
        options.size,
        n as f64 / seconds
    );
    Ok(())
}

fn server_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| cpu_seconds(Some(p))).sum()
}
