//! Two `rtwire serve` nodes on one real `redis-server` (Debian's package,
//! started by each test on a free loopback port and killed by pid): one
//! publish reaches every transport on both nodes with the same id, resume
//! works on any node, a restarted node keeps the epoch and history, and
//! the faults (Redis stopped, Redis flushed) never lose an acknowledged
//! message nor feed a wrong one.
#![cfg(feature = "redis")]

mod common;

use common::receiver::{assert_signed, hub_signature, Receiver, Reply, Seen};
use common::serve::{
    exchange, get, json_field, json_ids, publish, start_with, try_publish, user_token, user_tokens,
    ws_assert_nothing_queued, ws_connect, ws_next_text, ws_send_psst, Running, Sse, Ws,
};
use rtwire::hub::redis::RedisConfig;
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, TokenAuth};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// A `redis-server` child on a loopback port, killed by pid on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Set for a persistent server: its append-only file lives here.
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// A server that keeps nothing on disk.
    async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: None,
        };
        server.spawn().await;
        server
    }

    /// A server whose data survive a kill (append-only file, fsync always).
    async fn start_persistent() -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "rtwire-redis-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: Some(dir),
        };
        server.spawn().await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""]);
        match &self.dir {
            Some(dir) => {
                command
                    .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                    .arg(dir);
            }
            None => {
                command.args(["--appendonly", "no"]);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            // It could not listen (the port was taken since free_port).
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if let Ok(reply) = self.command(&["PING"]).await {
                if reply.starts_with("+PONG") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (SIGKILL, by its pid) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command in RESP, on a fresh connection; the raw reply.
    async fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).await?;
        let mut reply = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut reply))
            .await
            .map_err(|_| std::io::Error::other("no reply"))??;
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Short deadlines, so that the fault tests run in seconds.
fn redis_config(url: String) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.publish_timeout = Duration::from_secs(1);
    config.read_timeout = Duration::from_secs(1);
    config.ping_interval = Duration::from_millis(200);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(300);
    config
}

async fn node(redis: &RedisServer) -> Running {
    node_with(redis, TokenAuth::default()).await
}

async fn node_with(redis: &RedisServer, auth: TokenAuth) -> Running {
    let mut config = ServeConfig::default();
    config.redis = Some(redis_config(redis.url()));
    start_with(config, auth).await
}

/// The value of `series` (with its labels) in a node's `/metrics`.
async fn metric(addr: SocketAddr, series: &str) -> u64 {
    let (status, _, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {body}"))
}

/// Waits until `condition` holds, failing the test past the deadline.
async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `(epoch, seq)` of an id.
fn parts(id: &str) -> (String, u64) {
    let (epoch, seq) = id.split_once('-').unwrap();
    (epoch.to_owned(), seq.parse().unwrap())
}

async fn ws_join(ws: &mut Ws, channel: &str) {
    ws.send(Message::text(format!(
        "{{\"op\":\"join\",\"channel\":\"{channel}\"}}"
    )))
    .await
    .unwrap();
    loop {
        let text = ws_next_text(ws).await;
        if text.contains("\"type\":\"joined\"") && text.contains(channel) {
            assert!(text.contains("\"resume\":\"exact\""), "{text}");
            return;
        }
    }
}

/// The next delivery's id on a socket, skipping other replies.
async fn ws_next_id(ws: &mut Ws) -> String {
    loop {
        let text = ws_next_text(ws).await;
        if text.contains("\"type\":\"message\"") {
            return json_field(&text, "id").unwrap();
        }
    }
}

/// The channel's newest id on a node (`EPOCH-0` before any message): where
/// a long poll that must not miss the next message starts.
async fn newest(addr: SocketAddr, channel: &str) -> String {
    let (status, _, body) = get(addr, &format!("/channels/{channel}/poll")).await;
    assert_eq!(status, 200, "{body}");
    json_field(&body, "next").unwrap()
}

#[tokio::test]
async fn one_publish_on_a_reaches_every_transport_on_both_nodes_with_the_same_id() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    let mut long_polls = Vec::new();
    for n in [&a, &b] {
        let addr = n.addr;
        sse.push(Sse::open(addr, "/channels/room/events", None).await);
        let mut socket = ws_connect(addr, "").await;
        ws_join(&mut socket, "room").await;
        ws.push(socket);
        let since = newest(addr, "room").await;
        long_polls.push(tokio::spawn(async move {
            get(
                addr,
                &format!("/channels/room/long-poll?since={since}&timeout=20"),
            )
            .await
        }));
    }
    until("both long polls held", async || {
        a.hub.stats().waiters == 1 && b.hub.stats().waiters == 1
    })
    .await;
    let id = publish(a.addr, "room", "hello").await;
    for stream in &mut sse {
        let event = stream.next().await;
        assert_eq!(
            (event.id.as_str(), event.data),
            (id.as_str(), vec!["hello".to_owned()])
        );
    }
    for socket in &mut ws {
        assert_eq!(ws_next_id(socket).await, id);
    }
    for held in long_polls {
        let (status, _, body) = held.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(json_ids(&body), vec![id.clone()], "{body}");
    }
    for n in [&a, &b] {
        let (_, _, body) = get(n.addr, "/channels/room/poll").await;
        assert_eq!(json_ids(&body), vec![id.clone()], "{body}");
        assert_eq!(json_field(&body, "next").as_deref(), Some(id.as_str()));
    }
    // Ids are the channel's, the same whichever node publishes.
    let next = publish(b.addr, "room", "from b").await;
    let ((epoch, seq), (next_epoch, next_seq)) = (parts(&id), parts(&next));
    assert_eq!((next_epoch, next_seq), (epoch, seq + 1));
    for stream in &mut sse {
        assert_eq!(stream.next().await.id, next);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_moved_from_a_to_b_resumes_with_no_loss_and_no_duplicate() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut on_a = Sse::open(a.addr, "/channels/move/events", None).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(publish(a.addr, "move", &format!("m{i}")).await);
    }
    assert_eq!(on_a.next().await.id, ids[0]);
    assert_eq!(on_a.next().await.id, ids[1]);
    drop(on_a);
    // Published while the client moves, on both nodes; B has never seen
    // the channel before the client arrives with its last id.
    ids.push(publish(a.addr, "move", "m3").await);
    ids.push(publish(b.addr, "move", "m4").await);
    let mut on_b = Sse::open(b.addr, "/channels/move/events", Some(&ids[1])).await;
    for (i, id) in ids.iter().enumerate().skip(2) {
        let event = on_b.next().await;
        assert_eq!(event.event, "", "no notice: the resume is exact");
        assert_eq!((&event.id, event.data), (id, vec![format!("m{i}")]));
    }
    let live = publish(a.addr, "move", "m5").await;
    assert_eq!(on_b.next().await.id, live);
    // A WebSocket moving the same way, joining with its last id.
    let mut socket = ws_connect(b.addr, "").await;
    socket
        .send(Message::text(format!(
            "{{\"op\":\"join\",\"channel\":\"move\",\"since\":\"{}\"}}",
            ids[3]
        )))
        .await
        .unwrap();
    let joined = ws_next_text(&mut socket).await;
    assert!(joined.contains("\"resume\":\"exact\""), "{joined}");
    assert_eq!(ws_next_id(&mut socket).await, ids[4]);
    assert_eq!(ws_next_id(&mut socket).await, live);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_restarted_node_keeps_the_channel_epoch_and_history() {
    let redis = RedisServer::start().await;
    let a = node(&redis).await;
    let ids = [
        publish(a.addr, "keep", "one").await,
        publish(a.addr, "keep", "two").await,
        publish(a.addr, "keep", "three").await,
    ];
    a.shutdown().await;
    let again = node(&redis).await;
    let (_, _, body) = get(again.addr, &format!("/channels/keep/poll?since={}", ids[0])).await;
    assert!(body.contains("\"resume\":\"exact\""), "{body}");
    assert_eq!(json_ids(&body), ids[1..].to_vec(), "{body}");
    let next = publish(again.addr, "keep", "four").await;
    assert_eq!(parts(&next), (parts(&ids[0]).0, 4));
    again.shutdown().await;
}

#[tokio::test]
async fn the_stream_in_redis_keeps_history_bytes_of_payload() {
    let redis = RedisServer::start().await;
    let mut small = ServeConfig::default();
    small.redis = Some(redis_config(redis.url()));
    small.hub.history_bytes = 1000;
    let a = start_with(small, TokenAuth::default()).await;
    let payload = "x".repeat(400);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(publish(a.addr, "bounded", &payload).await);
    }
    // Node B keeps much more itself: what it loads is what Redis kept.
    let b = node(&redis).await;
    let (_, _, body) = get(b.addr, "/channels/bounded/poll").await;
    assert_eq!(json_ids(&body), ids[3..].to_vec(), "{body}");
    let (_, _, body) = get(b.addr, &format!("/channels/bounded/poll?since={}", ids[0])).await;
    assert!(body.contains("\"resume\":\"gap\""), "{body}");
    a.shutdown().await;
    b.shutdown().await;
}

/// What one subscriber received: ids in order.
async fn collect_sse(mut sse: Sse, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < want {
        let event = sse.next().await;
        assert_eq!(event.event, "", "no notice expected: {event:?}");
        got.push(event.id);
    }
    got
}

async fn collect_ws(mut ws: Ws, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < want {
        got.push(ws_next_id(&mut ws).await);
    }
    got
}

#[tokio::test]
async fn redis_stopped_while_publishing_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start_persistent().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for n in [&a, &b] {
        sse.push(Sse::open(n.addr, "/channels/outage/events", None).await);
        let mut socket = ws_connect(n.addr, "").await;
        ws_join(&mut socket, "outage").await;
        ws.push(socket);
    }
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    let publish_one = async |i: &mut usize, acked: &mut Vec<String>, refused: &mut usize| {
        let target = if i.is_multiple_of(2) { a.addr } else { b.addr };
        let (status, body) = try_publish(target, "outage", &format!("m{i}")).await;
        *i += 1;
        match status {
            202 => acked.push(json_field(&body, "id").unwrap()),
            503 => *refused += 1,
            other => panic!("publish answered {other}: {body}"),
        }
    };
    for _ in 0..10 {
        publish_one(&mut i, &mut acked, &mut refused).await;
    }
    assert_eq!(refused, 0);
    redis.kill();
    // Publishes continue while Redis is gone, for two seconds: each is
    // refused, and both nodes' pub/sub connections notice and retry.
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(2) {
        publish_one(&mut i, &mut acked, &mut refused).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(acked.len(), 10, "nothing acknowledged while Redis was down");
    assert!(refused >= 10, "{refused}");
    // The metrics say so: every refusal counted on the node that made it,
    // the pub/sub connections down.
    let refused_series = "rtwire_redis_refused_total{op=\"publish\"}";
    let counted = metric(a.addr, refused_series).await + metric(b.addr, refused_series).await;
    assert_eq!(counted, refused as u64);
    let resyncs_before = metric(b.addr, "rtwire_redis_resyncs_total").await;
    for n in [&a, &b] {
        until("the node to see Redis gone", async || {
            metric(n.addr, "rtwire_redis_connected").await == 0
        })
        .await;
        assert!(metric(n.addr, "rtwire_redis_connection_failures_total").await >= 1);
    }
    let acked_before = acked.len();
    redis.spawn().await;
    // Until the nodes are back each publish may still be refused; then
    // they are acknowledged again.
    let deadline = Instant::now() + DEADLINE;
    while acked.len() < acked_before + 10 {
        assert!(Instant::now() < deadline, "publishes never succeeded again");
        publish_one(&mut i, &mut acked, &mut refused).await;
    }
    for n in [&a, &b] {
        until("the node back on Redis", async || {
            metric(n.addr, "rtwire_redis_connected").await == 1
        })
        .await;
    }
    // B read the channel's stream again when it came back.
    assert!(metric(b.addr, "rtwire_redis_resyncs_total").await > resyncs_before);
    assert_eq!(metric(b.addr, "rtwire_redis_mirrored_channels").await, 1);
    let want = acked.len();
    let mut readers = Vec::new();
    for stream in sse {
        readers.push(tokio::spawn(collect_sse(stream, want)));
    }
    for socket in ws {
        readers.push(tokio::spawn(collect_ws(socket, want)));
    }
    for reader in readers {
        let got = reader.await.unwrap();
        // Everything acknowledged, in order, once. (A refused publish that
        // Redis did run would show up as an extra id here; none did.)
        assert_eq!(got, acked);
    }
    let epochs: std::collections::HashSet<String> = acked.iter().map(|id| parts(id).0).collect();
    assert_eq!(epochs.len(), 1, "the epoch survived the restart: {acked:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn flushall_tells_clients_the_epoch_changed_and_never_feeds_wrong_messages() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut on_b = Sse::open(b.addr, "/channels/flush/events", None).await;
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(publish(a.addr, "flush", &format!("old{i}")).await);
    }
    for id in &old {
        assert_eq!(&on_b.next().await.id, id);
    }
    let reply = redis.command(&["FLUSHALL"]).await.unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let new = publish(a.addr, "flush", "new0").await;
    assert_ne!(parts(&new).0, parts(&old[0]).0, "a new epoch");
    assert_eq!(parts(&new).1, 1);
    // B's live stream ends rather than skip over what was lost...
    let end = on_b.next_or_end().await;
    assert_eq!(end, None, "the stream ends, it does not go on");
    // ...and the client, resuming with its last id, is told.
    let mut again = Sse::open(b.addr, "/channels/flush/events", Some(&old[2])).await;
    let notice = again.next().await;
    assert_eq!(
        (notice.event.as_str(), notice.data),
        ("epoch_changed", vec![parts(&new).0])
    );
    let event = again.next().await;
    assert_eq!(
        (event.id, event.data),
        (new.clone(), vec!["new0".to_owned()])
    );
    // Polls on either node say the same.
    for n in [&a, &b] {
        let (_, _, body) = get(n.addr, &format!("/channels/flush/poll?since={}", old[2])).await;
        assert!(body.contains("\"resume\":\"epoch_changed\""), "{body}");
        assert_eq!(json_ids(&body), vec![new.clone()], "{body}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn except_sender_and_private_rooms_across_nodes() {
    let redis = RedisServer::start().await;
    let auth = TokenAuth {
        user_tokens: Some(user_tokens()),
        ..TokenAuth::default()
    };
    let a = node_with(&redis, auth.clone()).await;
    let b = node_with(&redis, auth).await;
    let mut alice = ws_connect(a.addr, &format!("?user_token={}", user_token("alice"))).await;
    ws_join(&mut alice, "chat").await;
    // Presence is per node: Alice hears her own join, never Bob's on B.
    let own = ws_next_text(&mut alice).await;
    assert!(own.contains(r#""joined":["alice"]"#), "{own}");
    let mut carol = ws_connect(a.addr, "").await;
    ws_join(&mut carol, "chat").await;
    let mut bob = ws_connect(b.addr, &format!("?user_token={}", user_token("bob"))).await;
    ws_join(&mut bob, "chat").await;
    // Bob's private room is mirrored on B from his connection on.
    until("bob's private room mirrored on b", async || {
        b.hub.contains("user:bob")
    })
    .await;
    alice
        .send(Message::text(
            r#"{"op":"publish","channel":"chat","data":"hi all","except_self":true}"#,
        ))
        .await
        .unwrap();
    let ack = ws_next_text(&mut alice).await;
    assert!(ack.contains("\"type\":\"published\""), "{ack}");
    let id = json_field(&ack, "id").unwrap();
    assert_eq!(ws_next_id(&mut bob).await, id, "another node");
    assert_eq!(ws_next_id(&mut carol).await, id, "the sender's node");
    ws_send_psst(&mut alice, &mut bob, "bob").await;
    // Alice saw neither her own message nor Bob's: her next one answers
    // a bad command.
    ws_assert_nothing_queued(&mut alice).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_whose_pubsub_connection_drops_reads_what_it_missed_from_the_stream() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let on_b = Sse::open(b.addr, "/channels/missed/events", None).await;
    let mut socket = ws_connect(b.addr, "").await;
    ws_join(&mut socket, "missed").await;
    let mut acked = vec![publish(a.addr, "missed", "first").await];
    // Every node's pub/sub connection is cut; Redis stays up, so these
    // publishes are acknowledged while B is not listening.
    let reply = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .await
        .unwrap();
    assert!(reply.starts_with(':'), "{reply}");
    for i in 0..20 {
        acked.push(publish(a.addr, "missed", &format!("m{i}")).await);
    }
    let want = acked.len();
    assert_eq!(collect_sse(on_b, want).await, acked);
    assert_eq!(collect_ws(socket, want).await, acked);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_hole_the_stream_cannot_fill_ends_live_streams_and_resumes_report_the_gap() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut on_b = Sse::open(b.addr, "/channels/holes/events", None).await;
    let mut socket = ws_connect(b.addr, "").await;
    ws_join(&mut socket, "holes").await;
    let old = [
        publish(a.addr, "holes", "one").await,
        publish(a.addr, "holes", "two").await,
    ];
    assert_eq!(on_b.next().await.id, old[0]);
    assert_eq!(on_b.next().await.id, old[1]);
    // Three messages numbered and lost (as a trimmed or partly lost
    // stream would have them): the next one cannot follow what B holds.
    let reply = redis
        .command(&["HINCRBY", "rtwire:{holes}:meta", "seq", "3"])
        .await
        .unwrap();
    assert_eq!(reply, ":5\r\n");
    let after = publish(a.addr, "holes", "six").await;
    assert_eq!(parts(&after), (parts(&old[0]).0, 6));
    // B's live subscribers end rather than skip 3..5 silently...
    assert_eq!(on_b.next_or_end().await, None);
    let close = loop {
        match tokio::time::timeout(DEADLINE, socket.recv()).await.unwrap() {
            Ok(Some(Message::Close(frame))) => break frame.expect("a close code"),
            Ok(Some(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(close.code, rtwire::proto::CloseCode(1013));
    assert!(
        close.reason.contains(&format!("rejoin since {}", old[1])),
        "{}",
        close.reason
    );
    // ...and resuming, the client is told of the gap, then gets what is left.
    let mut again = Sse::open(b.addr, "/channels/holes/events", Some(&old[1])).await;
    let notice = again.next().await;
    assert_eq!(
        (notice.event.as_str(), notice.data),
        ("gap", vec![after.clone()])
    );
    assert_eq!(again.next().await.id, after);
    let (_, _, body) = get(a.addr, &format!("/channels/holes/poll?since={}", old[1])).await;
    assert!(body.contains("\"resume\":\"gap\""), "{body}");
    assert_eq!(json_ids(&body), vec![after.clone()], "{body}");
    a.shutdown().await;
    b.shutdown().await;
}

/// How many connections are subscribed to `channel`'s pub/sub channel.
async fn pubsub_subscribers(redis: &RedisServer, channel: &str) -> u64 {
    let name = format!("rtwire:{{{channel}}}:pub");
    let reply = redis.command(&["PUBSUB", "NUMSUB", &name]).await.unwrap();
    let count = reply.rsplit(':').next().unwrap().trim();
    count.parse().unwrap()
}

#[tokio::test]
async fn each_node_subscribes_once_per_channel_until_its_hub_sweeps_it() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let first = Sse::open(b.addr, "/channels/once/events", None).await;
    let second = Sse::open(b.addr, "/channels/once/events", None).await;
    let mut socket = ws_connect(b.addr, "").await;
    ws_join(&mut socket, "once").await;
    assert_eq!(pubsub_subscribers(&redis, "once").await, 1, "one per node");
    let id = publish(a.addr, "once", "x").await;
    assert_eq!(ws_next_id(&mut socket).await, id);
    drop((first, second, socket));
    until("b's subscribers gone", async || {
        b.hub.stats().subscribers == 0
    })
    .await;
    // Idle long enough to be swept: B stops mirroring it.
    let later = Instant::now() + Duration::from_secs(3600);
    assert_eq!(b.hub.sweep_at(later), 1);
    until("b unsubscribed", async || {
        pubsub_subscribers(&redis, "once").await == 0
    })
    .await;
    // Asked again, B mirrors it again, from Redis's history.
    let next = publish(a.addr, "once", "y").await;
    let (_, _, body) = get(b.addr, &format!("/channels/once/poll?since={id}")).await;
    assert!(body.contains("\"resume\":\"exact\""), "{body}");
    assert_eq!(json_ids(&body), vec![next], "{body}");
    assert_eq!(pubsub_subscribers(&redis, "once").await, 1);
    a.shutdown().await;
    b.shutdown().await;
}

// ----- push: webhooks and WebSub subscriptions kept in Redis -----
//
// One node runs push for a Redis (it holds `rtwire:push:owner`); its
// endpoints and their cursors are kept in the hashes
// `rtwire:push:endpoints` and `rtwire:push:cursors`, so that a node
// started after it, on the same Redis, carries on where it stopped.

/// The admin token of the push nodes.
const ADMIN_TOKEN: &str = "admin-token";

/// The public URL of the push nodes: topic URLs stay the same across
/// restarts, though each node listens on its own port.
const PUBLIC_URL: &str = "http://rtwire.test";

/// A node on `redis` with push on: loopback receivers allowed, retries
/// after `schedule` (seconds, as `--webhook-retry-schedule` takes them).
async fn push_node(redis: &RedisServer, schedule: &str) -> Running {
    let mut config = ServeConfig::default();
    config.redis = Some(redis_config(redis.url()));
    let mut push = rtwire::push::PushConfig::new(ADMIN_TOKEN);
    push.allow_private_callbacks = true;
    push.retry_schedule = rtwire::push::schedule::RetrySchedule::parse(schedule).unwrap();
    push.public_url = Some(PUBLIC_URL.into());
    config.push = Some(push);
    start_with(config, TokenAuth::default()).await
}

/// A receiver whose waits are this file's.
async fn receiver(script: impl FnMut(&Seen) -> Reply + Send + 'static) -> Receiver {
    let mut receiver = Receiver::start(script).await;
    receiver.deadline = DEADLINE;
    receiver
}

/// One request with the admin bearer: the status and the JSON body
/// (`null` if empty).
async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, answer) = tokio::time::timeout(DEADLINE, exchange(addr, &request))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} answered in time"));
    let json = if answer.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("JSON ({e}): {answer:?}"))
    };
    (status, json)
}

/// Registers a webhook; the 201's object (with the secret).
async fn create_webhook(addr: SocketAddr, channel: &str, url: &str) -> Value {
    let request = serde_json::json!({"channel": channel, "url": url}).to_string();
    let (status, webhook) = admin(addr, "POST", "/webhooks", &request).await;
    assert_eq!(status, 201, "POST /webhooks {request}: {webhook}");
    webhook
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("a string {field}: {value}"))
}

/// `GET /webhooks/{id}/deliveries`' list.
async fn webhook_deliveries(addr: SocketAddr, id: &str) -> Vec<Value> {
    let (status, answer) = admin(addr, "GET", &format!("/webhooks/{id}/deliveries"), "").await;
    assert_eq!(status, 200, "{answer}");
    answer["deliveries"].as_array().expect("deliveries").clone()
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The raw reply to `EXISTS rtwire:push:owner`.
async fn owner_exists(redis: &RedisServer) -> String {
    redis
        .command(&["EXISTS", "rtwire:push:owner"])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_webhook_registered_on_a_node_survives_its_restart() {
    let redis = RedisServer::start().await;
    let mut receiver = receiver(|_| Reply::Status(200)).await;
    let a = push_node(&redis, "0,1").await;
    let created = create_webhook(a.addr, "kept", &receiver.url("/hooks/kept?k=v")).await;
    let secret = str_of(&created, "secret").to_owned();
    a.shutdown().await;

    let b = push_node(&redis, "0,1").await;
    let (status, list) = admin(b.addr, "GET", "/webhooks", "").await;
    assert_eq!(status, 200, "{list}");
    let listed = list["webhooks"].as_array().expect("webhooks");
    assert_eq!(listed.len(), 1, "{list}");
    for field in ["id", "channel", "url", "created_at", "state"] {
        assert_eq!(listed[0][field], created[field], "{field}: {list}");
    }
    assert!(listed[0].get("secret").is_none(), "{list}");
    let body = r#"{"after":"the restart"}"#;
    let id = publish(b.addr, "kept", body).await;
    let seen = receiver.next().await;
    assert_eq!(seen.method, "POST", "{seen:?}");
    assert_eq!(seen.target, "/hooks/kept?k=v");
    assert_eq!(seen.webhook_id(), id);
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.header("rtwire-channel"), Some("kept"), "{seen:?}");
    // Signed with the secret given at creation: it was kept too.
    assert_signed(&seen, &secret);
    b.shutdown().await;
}

#[tokio::test]
async fn a_pending_delivery_survives_a_restart_and_is_delivered_once() {
    let redis = RedisServer::start().await;
    let status = Arc::new(AtomicU16::new(500));
    let answer = status.clone();
    let mut receiver = receiver(move |_| Reply::Status(answer.load(Ordering::SeqCst))).await;
    // The second retry waits 30 s: M is still pending when A stops.
    let a = push_node(&redis, "0,30").await;
    let webhook = create_webhook(a.addr, "pending", &receiver.url("/")).await;
    let (id, secret) = (str_of(&webhook, "id"), str_of(&webhook, "secret"));
    let m = publish(a.addr, "pending", "M").await;
    for _ in 0..2 {
        let seen = receiver.next().await;
        assert_eq!(seen.webhook_id(), m, "{seen:?}");
        assert_eq!(seen.reply, Reply::Status(500));
    }
    until("a's retry of M pending", async || {
        metric(a.addr, "rtwire_push_retries_pending").await == 1
    })
    .await;
    a.shutdown().await;
    let early = receiver.drain();
    assert!(early.is_empty(), "no third attempt from a: {early:?}");

    status.store(200, Ordering::SeqCst);
    let b = push_node(&redis, "0,30").await;
    let seen = receiver.next().await;
    assert_eq!(seen.webhook_id(), m, "M again, after the restart: {seen:?}");
    assert_eq!(seen.body, b"M");
    assert_eq!(seen.reply, Reply::Status(200));
    assert_signed(&seen, secret);
    // Once: the next request is the next message, not M again.
    let m2 = publish(b.addr, "pending", "M2").await;
    let next = receiver.next().await;
    assert_eq!(next.webhook_id(), m2, "{next:?}");
    assert_eq!(next.body, b"M2");
    let log = webhook_deliveries(b.addr, id).await;
    let of_m: Vec<&Value> = log
        .iter()
        .filter(|d| d["message_id"] == m.as_str())
        .collect();
    assert_eq!(of_m.len(), 1, "b tried M once: {log:?}");
    assert_eq!(of_m[0]["outcome"], "delivered", "{log:?}");
    b.shutdown().await;
}

#[tokio::test]
async fn a_delivered_message_is_not_delivered_again_after_a_restart() {
    let redis = RedisServer::start().await;
    let mut receiver = receiver(|_| Reply::Status(200)).await;
    let a = push_node(&redis, "0,1").await;
    let webhook = create_webhook(a.addr, "done", &receiver.url("/")).await;
    let id = str_of(&webhook, "id");
    let m1 = publish(a.addr, "done", "M1").await;
    assert_eq!(receiver.next().await.webhook_id(), m1);
    // A has taken the 200 in: its cursor is past M1.
    until("a to record M1 delivered", async || {
        let (_, webhook) = admin(a.addr, "GET", &format!("/webhooks/{id}"), "").await;
        webhook["last_delivered"] == m1.as_str()
    })
    .await;
    a.shutdown().await;

    let b = push_node(&redis, "0,1").await;
    let m2 = publish(b.addr, "done", "M2").await;
    let first = receiver.next().await;
    assert_eq!(
        first.webhook_id(),
        m2,
        "the first request after the restart is M2, not M1 again: {first:?}"
    );
    assert_eq!(first.body, b"M2");
    b.shutdown().await;
}

#[tokio::test]
async fn a_websub_subscription_survives_a_restart() {
    let redis = RedisServer::start().await;
    let mut subscriber = receiver(|seen| match seen.method.as_str() {
        "GET" => Reply::Echo,
        _ => Reply::Status(200),
    })
    .await;
    let topic = format!("{PUBLIC_URL}/channels/feed");
    let callback = subscriber.url("/callback?sub=1");
    let secret = "the subscriber's secret";
    let a = push_node(&redis, "0,1").await;
    let request = form(&[
        ("hub.mode", "subscribe"),
        ("hub.topic", &topic),
        ("hub.callback", &callback),
        ("hub.secret", secret),
    ]);
    let post = format!(
        "POST /websub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{request}",
        request.len()
    );
    let (status, _, body) = exchange(a.addr, &post).await;
    assert_eq!(status, 202, "{body}");
    let verification = subscriber.next().await;
    assert_eq!(verification.method, "GET", "{verification:?}");
    assert_eq!(verification.param("sub").as_deref(), Some("1"));
    assert_eq!(verification.param("hub.mode").as_deref(), Some("subscribe"));
    assert_eq!(verification.param("hub.topic"), Some(topic.clone()));
    let websub = "rtwire_push_endpoints{kind=\"websub\"}";
    until("a's subscription active", async || {
        metric(a.addr, websub).await == 1
    })
    .await;
    a.shutdown().await;

    let b = push_node(&redis, "0,1").await;
    assert_eq!(metric(b.addr, websub).await, 1, "restored at start");
    let body = "for the subscribers";
    publish(b.addr, "feed", body).await;
    let seen = subscriber.next().await;
    assert_eq!(
        seen.method, "POST",
        "a delivery, no new verification: {seen:?}"
    );
    assert_eq!(seen.target, "/callback?sub=1");
    assert_eq!(seen.body, body.as_bytes());
    let mut links: Vec<String> = seen
        .headers_named("link")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|l| l.trim().to_owned())
        .collect();
    let mut want = [
        format!("<{PUBLIC_URL}/websub>; rel=\"hub\""),
        format!("<{topic}>; rel=\"self\""),
    ];
    links.sort();
    want.sort();
    assert_eq!(links, want, "both Link headers: {seen:?}");
    // Signed with the hub.secret given at subscription: it was kept too.
    assert_eq!(
        seen.header("x-hub-signature"),
        Some(hub_signature(secret.as_bytes(), body.as_bytes()).as_str()),
        "{seen:?}"
    );
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_gives_push_up_at_shutdown_and_the_next_takes_it_at_once() {
    let redis = RedisServer::start().await;
    let a = push_node(&redis, "0,1").await;
    assert_eq!(owner_exists(&redis).await, ":1\r\n", "a holds the lease");
    // Its lease runs well past the 10 s below: a node that only waited for
    // it to end would fail this test.
    let ttl = redis.command(&["PTTL", "rtwire:push:owner"]).await.unwrap();
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(ttl > 15_000, "a lease of {ttl} ms");
    a.shutdown().await;
    assert_eq!(owner_exists(&redis).await, ":0\r\n", "released at shutdown");

    let started = Instant::now();
    let b = push_node(&redis, "0,1").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "b started in {took:?}");
    assert_eq!(owner_exists(&redis).await, ":1\r\n", "b holds the lease");
    let (status, list) = admin(b.addr, "GET", "/webhooks", "").await;
    assert_eq!(status, 200, "b runs push: {list}");
    b.shutdown().await;
}
