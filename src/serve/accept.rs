//! Accepting connections when descriptors run out ([`Acceptor`]), and the
//! descriptor limit itself.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What [`Acceptor::accept`] gives.
#[derive(Debug)]
pub enum Accepted {
    /// A client to serve.
    Stream(TcpStream, SocketAddr),
    /// A client accepted with the last spare descriptor: the process is
    /// out of them. Refuse it quickly (e.g. 503) and close it.
    OutOfDescriptors(TcpStream),
}

/// A listener's accept loop that rides out descriptor exhaustion.
///
/// When the process is out of descriptors, `accept` fails and the client
/// stays queued in the kernel: retrying at once spins a core, and the
/// client hangs until the limit frees. An `Acceptor` keeps one spare
/// descriptor; when `accept` fails for lack of descriptors it closes the
/// spare, accepts the waiting client with it for the caller to refuse
/// quickly (503), and takes the spare back. Other errors back off (1 ms,
/// doubling to 1 s) and are logged (a `tracing` warning) at most once a
/// second.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    spare: Option<File>,
    name: &'static str,
    backoff: Duration,
    failures: u64,
    last_log: Option<Instant>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

impl Acceptor {
    /// Wraps `listener`; `name` labels its log events (field `listener`).
    pub fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            spare: spare_descriptor(),
            name,
            backoff: FIRST_BACKOFF,
            failures: 0,
            last_log: None,
        }
    }

    /// The listener.
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// The next client. Cancel-safe, as `TcpListener::accept` is.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            let error = match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = FIRST_BACKOFF;
                    return Accepted::Stream(stream, peer);
                }
                Err(e) => e,
            };
            self.note_failure(&error);
            if out_of_descriptors(&error) && self.spare.take().is_some() {
                let accepted = self.listener.accept().await;
                self.spare = spare_descriptor();
                if let Ok((stream, _)) = accepted {
                    return Accepted::OutOfDescriptors(stream);
                }
            }
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Logs accept failures at most once a second, with their count.
    fn note_failure(&mut self, error: &io::Error) {
        self.failures += 1;
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now - at >= LOG_EVERY) {
            tracing::warn!(
                listener = self.name,
                since_last_report = self.failures,
                %error,
                "accept failed"
            );
            self.failures = 0;
            self.last_log = Some(now);
        }
    }
}

fn spare_descriptor() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_descriptors(error: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = error.raw_os_error();
    code == Some(Errno::MFILE.raw_os_error()) || code == Some(Errno::NFILE.raw_os_error())
}

/// Raises the soft limit on open descriptors to the hard limit, and
/// returns the limit now in force (`None`: unlimited). A server holds one
/// descriptor per connection, and the usual soft limit (1024) is far below
/// any useful connection cap.
pub fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Ok(raised.current);
        }
    }
    Ok(limit.current)
}
