//! The `rtwire` binary as a child process: a command without the test's own
//! `RTWIRE_*` variables, and a server started from it that has said where
//! it listens.
//!
//! Only with the `cli` feature (the binary's `required-features`): without
//! it there is no binary to start.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The `rtwire` binary Cargo built for the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_rtwire");

/// How long [`ServeProcess::spawn`] waits for the startup line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// `rtwire ARGS...` with stdin closed and the `RTWIRE_*` variables of the
/// test's own environment removed (a test may set its own afterwards).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RTWIRE_") {
            command.env_remove(name);
        }
    }
    command
}

/// A server process (`rtwire serve`, `rtwire echo`), killed when dropped.
/// Its stderr is read to the end and kept, so it never blocks on a full
/// pipe, and printed when it is dropped during a panic (a failing test).
pub struct ServeProcess {
    child: Child,
    /// What its startup line says after `listening on `, e.g.
    /// `http://127.0.0.1:4321 (epoch 7)` or `ws://localhost:4321`.
    pub listening_on: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `rtwire serve --port 0 ARGS...` ([`command`]: no `RTWIRE_*`
    /// variables) and waits for its `listening on http://ADDR` line.
    pub async fn start(args: &[&str]) -> ServeProcess {
        let mut serve = command(&["serve", "--port", "0"]);
        serve.args(args);
        ServeProcess::spawn(serve).await
    }

    /// Starts `command` (stdout discarded, stderr read here) and waits at
    /// most [`STARTUP_DEADLINE`] for a line with `listening on `; panics,
    /// showing stderr so far, if it exits or falls silent before.
    pub async fn spawn(mut command: Command) -> ServeProcess {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rtwire");
        let stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::process::ChildStderr::from_std(stderr).expect("async stderr");
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let startup = tokio::time::timeout(STARTUP_DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Some(rest.to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(listening_on)) = startup else {
            let _ = child.kill();
            let _ = child.wait();
            let why = match startup {
                Ok(_) => "exited before its startup line".to_owned(),
                Err(_) => format!("did not say where it listens within {STARTUP_DEADLINE:?}"),
            };
            panic!(
                "{command:?} {why}; its stderr:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        let keep = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap().push(line);
            }
        });
        ServeProcess {
            child,
            listening_on,
            log,
        }
    }

    /// The address of an `http://ADDR` startup line, as `rtwire serve`
    /// prints it (`listening on http://ADDR (epoch EPOCH)`).
    pub fn addr(&self) -> SocketAddr {
        self.listening_on
            .strip_prefix("http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("an http:// address in {:?}", self.listening_on))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.join("\n")).unwrap_or_default();
            eprintln!("--- the server's stderr ---\n{log}\n---");
        }
    }
}
