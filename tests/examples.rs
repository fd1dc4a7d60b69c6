//! The programs in `examples/`, run as a user would run them: each is
//! started as a subprocess on a free port (it prints the address it bound),
//! driven with rtwire's client or against an in-process server, and killed
//! at the end of its test.
//!
//! `cargo test` builds the examples, but `cargo test --test examples` does
//! not: the first test to need one runs `cargo build --examples` with this
//! build's features and profile (a no-op when they are fresh).
#![cfg(all(feature = "futures", feature = "tls"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::certs::TestCerts;
use rtwire::handshake::HandshakeError;
use rtwire::proto::{CloseCode, Message};
use rtwire::ws::{self, tls::TlsConnector, AcceptConfig, AcceptResponse, ConnectConfig, Upgrade};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// Every wait on an example (its start, a reply, its exit) is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// `target/<profile>`: the test executable lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Cargo's feature flags for building the examples as this test was built
/// (so the library is not rebuilt with another feature set). The defaults
/// and `--all-features` are passed as such: spelled out as a list they
/// resolve the dependencies' features differently and rebuild them.
fn feature_args() -> Vec<String> {
    let on = [
        ("futures", cfg!(feature = "futures")),
        ("http", cfg!(feature = "http")),
        ("hub", cfg!(feature = "hub")),
        ("serve", cfg!(feature = "serve")),
        ("tls", cfg!(feature = "tls")),
        ("native-roots", cfg!(feature = "native-roots")),
        ("cli", cfg!(feature = "cli")),
    ];
    let names: Vec<&str> = on.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    if names.len() == on.len() {
        vec!["--all-features".into()]
    } else if names == ["futures", "http", "hub", "serve", "tls", "cli"] {
        vec![] // default = ["cli", "futures", "http"], and cli brings serve, hub, tls
    } else {
        let list = names.join(",");
        vec!["--no-default-features".into(), "--features".into(), list]
    }
}

/// The path of example `name`, built once per test run.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        // What cargo sets for this test's process, and the user's shell
        // does not: left in, the build scripts that watch them (ring's
        // watches CARGO_MANIFEST_DIR) would rerun, and the outer and this
        // build would rebuild each other's dependencies every time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_by_cargo = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_CRATE_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_PRIMARY_PACKAGE",
                ]
                .contains(&&*name)
                || name == "CARGO_TARGET_TMPDIR";
            if set_by_cargo {
                cargo.env_remove(&*name);
            }
        }
        cargo
            .args(["build", "--quiet", "--examples"])
            .args(feature_args())
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.parent().expect("target/"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples: {status}");
    });
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A running example; killed when dropped (`kill_on_drop`).
struct Running {
    _child: Child,
    /// What it printed after "listening on ", e.g. `ws://127.0.0.1:4321`.
    url: String,
}

/// Starts example `name` with `args` and waits for its "listening on" line.
async fn start(name: &str, args: &[&str]) -> Running {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut line))
        .await
        .unwrap_or_else(|_| panic!("{name} printed no address within {WAIT:?}"))
        .expect("read the example's stdout");
    let prefix = format!("{name}: listening on ");
    let url = line
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{name} printed {line:?}"))
        .to_owned();
    Running { _child: child, url }
}

/// Runs example `name` to its end; returns (success, stdout, stderr).
async fn run(name: &str, args: &[&str]) -> (bool, String, String) {
    let child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {WAIT:?}"))
        .expect("wait for the example");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The next message, within the deadline.
async fn next<S>(socket: &mut ws::WebSocket<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(WAIT, socket.recv())
        .await
        .expect("a message within the deadline")
        .expect("no error")
}

/// Closes with 1000 and reads to the end: the server completes the handshake.
async fn close<S>(mut socket: ws::WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(WAIT, socket.close(CloseCode::NORMAL, "bye"))
        .await
        .expect("the close frame written within the deadline")
        .unwrap();
    let reply = next(&mut socket).await;
    assert!(
        reply.as_ref().is_some_and(Message::is_close),
        "close reply: {reply:?}"
    );
    assert_eq!(next(&mut socket).await, None);
}

fn port_of(url: &str) -> &str {
    url.rsplit(':').next().expect("a port")
}

#[tokio::test]
async fn echo_server_echoes_text_and_binary_and_closes_cleanly() {
    let server = start("echo_server", &["127.0.0.1:0"]).await;
    assert!(server.url.starts_with("ws://127.0.0.1:"), "{}", server.url);
    let (mut socket, _) = ws::connect(&server.url).await.unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("hello")));
    let payload: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    socket.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::binary(payload)));
    close(socket).await;
}

#[tokio::test]
async fn echo_server_over_wss_with_a_test_ca() {
    let certs = TestCerts::new();
    let dir = certs.write_to_temp_dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let args = [
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let server = start("echo_server", &args).await;
    assert!(server.url.starts_with("wss://"), "{}", server.url);
    let url = format!("wss://localhost:{}/", port_of(&server.url));
    let config =
        ConnectConfig::default().tls(TlsConnector::from_pem(certs.ca_pem.as_bytes()).unwrap());
    let (mut socket, _) = ws::connect_with(&url, &config).await.unwrap();
    assert!(socket.get_ref().is_tls());
    socket.send(Message::text("over tls")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("over tls")));
    close(socket).await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn broadcast_chat_delivers_to_the_others_and_not_the_sender() {
    let server = start("broadcast_chat", &["127.0.0.1:0"]).await;
    // The nickname from the query for one, from a header for the other.
    let (mut alice, _) = ws::connect(&format!("{}/?nick=alice", server.url))
        .await
        .unwrap();
    let bob_config = ConnectConfig::default().header("X-Nick", "bob");
    let (mut bob, _) = ws::connect_with(&format!("{}/", server.url), &bob_config)
        .await
        .unwrap();

    alice.send(Message::text("hi bob")).await.unwrap();
    assert_eq!(next(&mut bob).await, Some(Message::text("alice: hi bob")));
    bob.send(Message::text("hi alice")).await.unwrap();
    // Had alice been sent her own line, it would come first: it went into
    // the room before bob's.
    assert_eq!(next(&mut alice).await, Some(Message::text("bob: hi alice")));
    close(alice).await;
    close(bob).await;
}

#[tokio::test]
async fn broadcast_chat_refuses_a_request_without_a_nickname() {
    let server = start("broadcast_chat", &["127.0.0.1:0"]).await;
    for target in ["/", "/?nick=", "/?nick=no%20spaces"] {
        let err = ws::connect(&format!("{}{target}", server.url))
            .await
            .expect_err("refused");
        let ws::Error::Handshake(HandshakeError::Rejected(rejected)) = err else {
            panic!("{target}: {err:?}");
        };
        assert_eq!(rejected.status, 400, "{target}");
        let body = String::from_utf8_lossy(&rejected.body);
        assert!(body.contains("?nick=NAME"), "{target}: {body}");
    }
}

/// The headers an in-process server saw on its one upgrade request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Serves one WebSocket connection, recording the request's headers and
/// echoing what it is sent.
async fn recording_echo_server() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let seen = Seen::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let upgrade = Upgrade::read_tcp(tcp, &AcceptConfig::default())
            .await
            .unwrap();
        let headers = upgrade.request().headers.iter();
        *record.lock().unwrap() = headers.map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let mut socket = upgrade.accept(AcceptResponse::new()).await.unwrap();
        while let Some(message) = socket.recv().await.unwrap() {
            if message.is_data() {
                socket.send(message).await.unwrap();
            }
        }
    });
    (url, seen, task)
}

fn header<'a>(seen: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    seen.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn wss_client_sends_its_headers() {
    let (url, seen, server) = recording_echo_server().await;
    let args = [
        url.as_str(),
        "--token",
        "s3cret",
        "--header",
        "Origin: https://app.example",
        "--header",
        "User-Agent: headers-test/2",
        "first",
        "second",
    ];
    let (ok, stdout, stderr) = run("wss_client", &args).await;
    assert!(ok, "wss_client failed: {stderr}");
    assert_eq!(stdout, "first\nsecond\n");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the server to see the close")
        .expect("the server task");
    let seen = seen.lock().unwrap();
    assert_eq!(header(&seen, "authorization"), ["Bearer s3cret"]);
    assert_eq!(header(&seen, "origin"), ["https://app.example"]);
    // The one given replaces the default, not joins it.
    assert_eq!(header(&seen, "user-agent"), ["headers-test/2"]);
}

#[tokio::test]
async fn wss_client_talks_to_echo_server_over_wss_with_ca() {
    let dir = TestCerts::new().write_to_temp_dir();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    let server = start(
        "echo_server",
        &["127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key],
    )
    .await;
    let url = format!("wss://localhost:{}/", port_of(&server.url));

    let (ok, stdout, stderr) = run("wss_client", &[&url, "--ca", &ca, "over wss"]).await;
    assert!(ok, "wss_client failed: {stderr}");
    assert_eq!(stdout, "over wss\n");
    // Without the test CA the server is not trusted (Mozilla's roots).
    let (ok, _, stderr) = run("wss_client", &[&url, "not sent"]).await;
    assert!(!ok, "connected without trusting the test CA");
    assert!(stderr.to_lowercase().contains("tls"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn wss_client_reports_a_refused_handshake_with_its_status() {
    let server = start("broadcast_chat", &["127.0.0.1:0"]).await;
    let (ok, stdout, stderr) = run("wss_client", &[&server.url, "hello"]).await;
    assert!(!ok, "the chat accepted a client without a nickname");
    assert_eq!(stdout, "");
    assert!(stderr.contains("400"), "{stderr}");
}

/// The receiver example verifies a real delivery of `rtwire serve` with
/// `push::signature::verify`, and refuses a forged one with 401.
#[cfg(feature = "serve")]
#[tokio::test]
async fn webhook_receiver_verifies_what_serve_sends_and_rejects_a_forgery() {
    use common::serve::{exchange, post_request, publish, start_with};
    use rtwire::push::PushConfig;
    use rtwire::serve::{ServeConfig, TokenAuth};

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut child = Command::new(example("webhook_receiver"))
        .args(["127.0.0.1:0", secret])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start webhook_receiver");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut next_line = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line from webhook_receiver in time")
            .expect("read its stdout")
            .expect("it is still running")
    };
    let first = next_line().await;
    let addr = first
        .strip_prefix("webhook_receiver: listening on http://")
        .unwrap_or_else(|| panic!("webhook_receiver printed {first:?}"))
        .to_owned();

    let mut push = PushConfig::new("admin-secret");
    push.allow_private_callbacks = true;
    let mut config = ServeConfig::default();
    config.push = Some(push);
    let server = start_with(config, TokenAuth::default()).await;
    let hook = format!(r#"{{"channel":"orders","url":"http://{addr}/hook","secret":"{secret}"}}"#);
    let register = post_request("/webhooks", Some("Bearer admin-secret"), &hook);
    let (status, _, body) = exchange(server.addr, &register).await;
    assert_eq!(status, 201, "{body}");

    let id = publish(server.addr, "orders", r#"{"order":42}"#).await;
    assert_eq!(
        next_line().await,
        format!(r#"verified {id} {{"order":42}}"#)
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = format!(
        "POST /hook HTTP/1.1\r\nHost: x\r\nwebhook-id: msg_forged\r\nwebhook-timestamp: {now}\r\n\
         webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let receiver: std::net::SocketAddr = addr.parse().unwrap();
    let (status, _, _) = exchange(receiver, &forged).await;
    assert_eq!(status, 401);
    let line = next_line().await;
    assert!(line.starts_with("rejected msg_forged: "), "{line}");
    server.shutdown().await;
}
