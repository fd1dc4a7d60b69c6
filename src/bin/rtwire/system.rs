//! What the servers need from the system: addresses, descriptors, signals,
//! and the allocator.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use rtwire::serve::raise_descriptor_limit;

/// Descriptors kept for the process itself (listener, spare, runtime, logs)
/// when the connection cap is derived from the descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 64;
/// The default connection cap, where descriptors allow.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long resolving `--host` may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the first address `host` resolves to (with `port`) that `bind`
/// accepts: `localhost` may name `::1` before `127.0.0.1`, and a host
/// without IPv6 then still listens.
pub async fn bind_host<T, F, Fut>(host: &str, port: u16, mut bind: F) -> Result<T, String>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let cannot = |e: &dyn std::fmt::Display| format!("cannot listen on {host}:{port}: {e}");
    let resolving = tokio::net::lookup_host((host, port));
    let addresses = tokio::time::timeout(RESOLVE_TIMEOUT, resolving)
        .await
        .map_err(|_| cannot(&"resolving the host timed out"))?
        .map_err(|e| cannot(&e))?;
    let mut last_error = None;
    for address in addresses {
        match bind(address).await {
            Ok(bound) => return Ok(bound),
            // Not the address's fault: another address would not help.
            Err(e) if is_broker_error(&e) => return Err(e.to_string()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => cannot(&e),
        None => format!("{host} resolves to no address"),
    })
}

/// Whether binding failed on Redis rather than on the address.
fn is_broker_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<rtwire::hub::redis::ConnectError>())
}

/// The connection cap: the one asked for, or 10,000 where descriptors
/// allow. The descriptor limit is first raised to its hard limit; a cap
/// above what descriptors allow is lowered, with a warning.
pub fn connection_cap(asked: Option<usize>, command: &str) -> usize {
    let room = match raise_descriptor_limit() {
        Ok(Some(limit)) => usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("rtwire {command}: cannot read the descriptor limit: {e}");
            None
        }
    };
    let wanted = asked.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    match room {
        Some(room) if room < wanted => {
            if asked.is_some() {
                tracing::warn!(
                    "rtwire {command}: --max-connections {wanted} exceeds the descriptor limit; using {room}"
                );
            }
            room.max(1)
        }
        _ => wanted,
    }
}

/// How often a server hands freed heap memory back to the system.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Runs `server` while, every [`TRIM_INTERVAL`], returning the heap's free
/// pages to the system. glibc keeps what a burst of large messages freed
/// (its mmap threshold rises after the first large free, so later ones
/// come from the heap, between long-lived history messages): after two
/// slow subscribers were fed 50 x 1 MiB, RSS stayed 17 MiB above start
/// plus the history without this, and came back to it with it
/// (`benches/hostile/run --only 4b`).
pub async fn with_allocator_trim<F: Future>(server: F) -> F::Output {
    let trim = tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim_allocator();
        }
    });
    let output = server.await;
    trim.abort();
    output
}

/// Makes every thread allocate from glibc's main heap, to be called before
/// any thread starts, unless the environment chose an arena count itself
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`).
///
/// `malloc_trim` shrinks the top of the main heap, but not the top of the
/// per-thread heaps glibc adds under contention. After 8 echo connections
/// each sent 45 MiB in 15 MiB fragments, a worker's heap kept 30 MiB that
/// was free but resident, for good; with one heap RSS came back to its
/// start at the next trim (`benches/hostile/run --only 11`). Small
/// allocations still come from each thread's cache, and `benches/compare`
/// measured the echo rows with one heap at 0.94-1.07 of the default (noise)
/// on this 2-core machine. Fixing the mmap or trim thresholds instead
/// (which stops glibc from raising them) made the 16 MiB echo 0.39x as
/// fast: every large buffer was mapped and faulted in again. Elsewhere a
/// no-op.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max") {
            return;
        }
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: mallopt takes the allocator's lock itself and changes one
        // setting that glibc accepts at any time; a refusal (return 0)
        // leaves the default, which is safe too.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`,
/// which also releases whole free pages inside the heap, not only at its
/// top). Elsewhere a no-op.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim has no preconditions: it takes each arena's
        // lock itself, is safe to call from any thread at any time, and
        // only returns memory malloc considers free.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
