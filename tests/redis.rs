//! Two `rtwire serve` nodes on one real `redis-server` (Debian's package,
//! started by each test on a free loopback port and killed by pid): one
//! publish reaches every transport on both nodes with the same id, resume
//! works on any node, a restarted node keeps the epoch and history, and
//! the faults (Redis stopped, Redis flushed) never lose an acknowledged
//! message nor feed a wrong one.
#![cfg(feature = "redis")]

mod common;

use common::serve::{
    get, json_field, json_ids, publish, start_with, try_publish, user_token, user_tokens,
    ws_assert_nothing_queued, ws_connect, ws_next_text, ws_send_psst, Running, Sse, Ws,
};
use rtwire::hub::redis::RedisConfig;
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, TokenAuth};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
