//! The `rtwire` binary's command line: help, version, usage errors, flags
//! as `--flag=value`, environment variables, host names, token minting.
#![cfg(feature = "cli")]

mod common;

use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{command, ServeProcess};
use rtwire::proto::Message;
use rtwire::serve::UserTokens;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs the binary to completion with `args`, the `RTWIRE_*` variables of
/// the test's own environment removed.
fn run(args: &[&str]) -> Output {
    command(args).output().expect("run rtwire")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Sends one request and returns the status and body of the answer.
async fn request(addr: std::net::SocketAddr, head: &str, body: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8(answer).expect("a UTF-8 answer")
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered within 10 s");
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

#[test]
fn serve_help_explains_every_flag_and_its_variable() {
    let output = run(&["serve", "--help"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let help = stdout(&output);
    for flag in [
        "host",
        "port",
        "publish-token",
        "subscribe-token",
        "user-secret-file",
        "max-connections",
        "cors-origin",
        "metrics-token",
        "tls-cert",
        "tls-key",
        "max-body",
        "admin-token",
        "public-url",
        "webhook-retry-schedule",
        "websub-min-lease",
        "websub-max-lease",
        "max-webhooks",
        "max-websub-subscriptions",
    ] {
        assert!(help.contains(&format!("--{flag} <")), "--{flag} in {help}");
        let variable = format!("RTWIRE_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&variable), "{variable} in {help}");
    }
    assert!(help.contains("[default: 8080]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1]"), "{help}");
}

#[test]
fn every_command_has_its_own_help() {
    let commands: [(&str, &[&str]); 3] = [
        ("token", &["--user-secret-file", "--expires", "<USER>"]),
        (
            "echo",
            &[
                "--host",
                "--port",
                "--max-connections",
                "--max-message",
                "--memory-budget",
                "--tls-cert",
                "--tls-key",
                "[default: 9001]",
            ],
        ),
        ("autobahn-client", &["--url", "--agent"]),
    ];
    for (command, expected) in commands {
        let output = run(&[command, "--help"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{command}: {}",
            stderr(&output)
        );
        let help = stdout(&output);
        for word in expected {
            assert!(help.contains(word), "{word} in `{command} --help`: {help}");
        }
    }
    let output = run(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    for command in ["serve", "token", "echo", "autobahn-client"] {
        assert!(stdout(&output).contains(command), "{command} listed");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    let output = run(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), format!("rtwire {version}\n"));
    let output = run(&["serve", "--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), format!("rtwire-serve {version}\n"));
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let cases: [(&[&str], &str); 8] = [
        (&["serve", "--no-such-flag"], "--no-such-flag"),
        (
            &[
                "serve",
                "--admin-token",
                "t",
                "--webhook-retry-schedule",
                "1,x",
            ],
            "--webhook-retry-schedule",
        ),
        (
            &["serve", "--admin-token", "t", "--public-url", "ftp://x/"],
            "--public-url",
        ),
        (&["serve", "--allow-private-callbacks"], "--admin-token"),
        (&["serve", "--port", "99999"], "--port"),
        (&["serve", "--port"], "--port"),
        (&["token", "alice"], "--user-secret-file"),
        (&["no-such-command"], "no-such-command"),
    ];
    for (args, named) in cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(2), "no command");
    assert!(stderr(&output).contains("Usage"), "{}", stderr(&output));
}

#[tokio::test]
async fn serve_takes_flag_equals_value_and_listens_on_port_0() {
    let running = ServeProcess::spawn(command(&["serve", "--port=0", "--max-body=4"])).await;
    let addr = running.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        request(addr, "GET /healthz HTTP/1.1", "").await,
        (200, "ok\n".into())
    );
    // --max-body=4 took effect: a 5-byte body is too large.
    let (status, _) = request(addr, "POST /channels/a HTTP/1.1", "12345").await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn serve_listens_on_the_port_in_rtwire_port() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut serve = command(&["serve"]);
    serve.env("RTWIRE_PORT", port.to_string());
    let running = ServeProcess::spawn(serve).await;
    let addr = running.addr();
    assert_eq!(addr.port(), port);
    assert_eq!(request(addr, "GET /healthz HTTP/1.1", "").await.0, 200);
}

#[tokio::test]
async fn a_flag_wins_over_its_variable() {
    let mut serve = command(&["serve", "--port", "0"]);
    // Were the variable used, serve would listen on port 1, or fail to.
    serve.env("RTWIRE_PORT", "1");
    let running = ServeProcess::spawn(serve).await;
    assert_ne!(running.addr().port(), 1);
}

#[tokio::test]
async fn the_publish_token_may_come_from_the_environment() {
    let mut serve = command(&["serve", "--port", "0"]);
    serve.env("RTWIRE_PUBLISH_TOKEN", "s3cret");
    let running = ServeProcess::spawn(serve).await;
    let addr = running.addr();
    let anonymous = request(addr, "POST /channels/a HTTP/1.1", "hi").await;
    assert_eq!(anonymous.0, 401);
    let authorized = "POST /channels/a HTTP/1.1\r\nAuthorization: Bearer s3cret";
    assert_eq!(request(addr, authorized, "hi").await.0, 202);
}

#[tokio::test]
async fn serve_resolves_a_host_name() {
    let running =
        ServeProcess::spawn(command(&["serve", "--host", "localhost", "--port", "0"])).await;
    let addr = running.addr();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(request(addr, "GET /healthz HTTP/1.1", "").await.0, 200);
}

#[tokio::test]
async fn echo_resolves_a_host_name_and_echoes() {
    let running = ServeProcess::spawn(command(&["echo", "--host", "localhost", "--port=0"])).await;
    let url = running
        .listening_on
        .split_whitespace()
        .next()
        .expect("a URL")
        .to_owned();
    assert!(url.starts_with("ws://localhost:"), "{url}");
    assert!(!url.ends_with(":0"), "the bound port, not 0: {url}");
    let talk = async {
        let (mut socket, _) = rtwire::ws::connect(&url).await.expect("connect");
        socket.send(Message::text("hello")).await.expect("send");
        socket.recv().await.expect("recv")
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .expect("echoed within 10 s");
    assert_eq!(reply, Some(Message::text("hello")));
}

#[tokio::test]
async fn echo_on_io_uring_says_which_front_end_serves_and_echoes() {
    let running = ServeProcess::spawn(command(&["echo", "--io-uring", "--port=0"])).await;
    // "ws://HOST:PORT (at most N connections, io_uring)", or the tokio
    // line after one saying why io_uring is unavailable here.
    let line = running.listening_on.clone();
    #[cfg(target_os = "linux")]
    if rtwire::uring::probe().is_ok() {
        assert!(line.ends_with("connections, io_uring)"), "{line}");
    } else {
        assert!(line.ends_with("connections)"), "{line}");
    }
    let url = line.split_whitespace().next().expect("a URL").to_owned();
    let talk = async {
        let (mut socket, _) = rtwire::ws::connect(&url).await.expect("connect");
        socket
            .send(Message::binary(vec![1u8; 100_000]))
            .await
            .expect("send");
        socket.recv().await.expect("recv")
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .expect("echoed within 10 s");
    assert_eq!(reply, Some(Message::binary(vec![1u8; 100_000])));
}

#[test]
fn token_mints_a_token_the_secret_verifies() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let path = std::env::temp_dir().join(format!("rtwire-cli-secret-{}", std::process::id()));
    std::fs::write(&path, [&secret[..], b"\n"].concat()).unwrap();
    let path_arg = path.to_str().unwrap();
    let output = run(&[
        "token",
        "alice",
        "--user-secret-file",
        path_arg,
        "--expires=60",
    ]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = stdout(&output);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tokens = UserTokens::new(secret).unwrap();
    assert_eq!(tokens.verify(token.trim_end(), now).unwrap(), "alice");
    // --expires=60: no longer valid two minutes from now.
    assert!(tokens.verify(token.trim_end(), now + 120).is_err());
}

#[test]
fn token_with_an_unreadable_secret_file_exits_2() {
    let output = run(&["token", "alice", "--user-secret-file", "/no/such/file"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/no/such/file"),
        "{}",
        stderr(&output)
    );
}

/// `GET /metrics`, the value of one unlabelled metric.
async fn metric(addr: std::net::SocketAddr, name: &str) -> Option<u64> {
    let (status, body) = request(addr, "GET /metrics HTTP/1.1", "").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn history_and_idle_channel_flags_set_the_hub() {
    let running = ServeProcess::spawn(command(&[
        "serve",
        "--port=0",
        "--history-messages=2",
        "--channel-idle-timeout=1",
    ]))
    .await;
    let addr = running.addr();
    for data in ["a", "b", "c"] {
        assert_eq!(
            request(addr, "POST /channels/x HTTP/1.1", data).await.0,
            202
        );
    }
    let (status, poll) = request(addr, "GET /channels/x/poll HTTP/1.1", "").await;
    assert_eq!(status, 200);
    assert!(
        !poll.contains(r#""data":"a""#)
            && poll.contains(r#""data":"b""#)
            && poll.contains(r#""data":"c""#),
        "two messages kept: {poll}"
    );
    assert_eq!(metric(addr, "rtwire_channels").await, Some(1));
    // Nobody listens: the channel goes within about 1.25 s of its last
    // message (the sweep runs every second here); wait at most 10 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(addr, "rtwire_channels").await != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "channel never swept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(addr, "rtwire_history_bytes").await, Some(0));
}

#[test]
fn serve_says_when_redis_cannot_be_reached_or_its_url_is_wrong() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("redis://127.0.0.1:{port}/");
    let cases = [
        (down.as_str(), format!("cannot reach Redis at {down}")),
        ("http://x", "invalid Redis URL http://x".to_owned()),
        (
            "redis://:hunter2@127.0.0.1:1/",
            "cannot reach Redis at redis://<redacted>@127.0.0.1:1/".to_owned(),
        ),
    ];
    for (url, says) in cases {
        let output = run(&["serve", "--port", "0", "--redis", url]);
        assert_eq!(output.status.code(), Some(1), "{url}");
        let err = stderr(&output);
        assert!(err.contains(&says), "{url}: {err}");
        assert!(!err.contains("cannot listen"), "{url}: {err}");
        assert!(!err.contains("hunter2"), "{url}: {err}");
    }
}
