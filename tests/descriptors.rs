//! Attack 8, descriptor exhaustion: `rtwire serve` under a descriptor limit
//! far below what clients open. Every client gets an answer quickly (served,
//! or 503), none hangs in the kernel's queue, and the server serves again
//! once they leave.
#![cfg(feature = "cli")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The binary under `ulimit -n limit` (soft and hard: it cannot raise it),
/// on a free port; returns the child and its address.
async fn serve_with_descriptor_limit(limit: u32) -> (Child, String) {
    let bin = env!("CARGO_BIN_EXE_rtwire");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec '{bin}' serve --port 0"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rtwire serve");
    let stderr = child.stderr.take().expect("stderr");
    let stderr = tokio::process::ChildStderr::from_std(stderr).expect("async stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("the server starts")
    .expect("a listening line");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Sends a request on a new connection; the status, or 0 if the server
/// closed without one.
async fn status_of(stream: &mut TcpStream) -> u16 {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn at_the_descriptor_limit_every_client_gets_an_answer_quickly() {
    let (mut child, addr) = serve_with_descriptor_limit(96).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Far more connections than the server has descriptors for, all open
    // at once before any sends its request.
    let mut clients = Vec::new();
    for _ in 0..300 {
        clients.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    for stream in &mut clients {
        // A refused client may find its connection closed already.
        let _ = stream.write_all(request).await;
    }
    let answers = tokio::time::timeout(Duration::from_secs(10), async {
        let mut statuses = Vec::new();
        for stream in &mut clients {
            statuses.push(status_of(stream).await);
        }
        statuses
    })
    .await
    .expect("every client answered within 10 s, none left hanging");
    let count = |status| answers.iter().filter(|&&s| s == status).count();
    assert!(count(200) > 0, "some are served: {answers:?}");
    assert!(count(503) > 0, "the rest are refused: {answers:?}");
    // 0: closed without a word, when even the answer cannot be written.
    assert_eq!(
        count(200) + count(503) + count(0),
        answers.len(),
        "{answers:?}"
    );
    drop(clients);
    // And it serves again.
    let mut fresh = TcpStream::connect(&addr).await.expect("connect");
    fresh.write_all(request).await.expect("send");
    assert_eq!(status_of(&mut fresh).await, 200);
    let _ = child.kill();
    let _ = child.wait();
}
