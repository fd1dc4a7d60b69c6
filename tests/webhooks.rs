//! Signed webhooks (Standard Webhooks) end to end: `rtwire serve` as a
//! child process (tests/common/process.rs), its admin routes over plain
//! HTTP, and local receivers (tests/common/receiver.rs) on a bare
//! `TcpListener` whose answers each test scripts. Signatures are checked
//! with `hmac` + `sha2` + `base64` directly, none of rtwire's push code.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use common::process::ServeProcess;
use common::receiver::{assert_signed, now_unix, sign, Receiver, Reply};
use common::serve::Sse;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The admin token of the tests' servers.
const TOKEN: &str = "the-admin-token";

/// How long a test waits for any one thing before it fails.
const DEADLINE: Duration = Duration::from_secs(25);

/// rtwire's timeout for one delivery attempt (the interface's 15 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

// ----- the server, as a child process -----

/// A server with push on, private callbacks allowed (the receivers are on
/// 127.0.0.1) and the short retry schedule 0,1,1 (4 attempts in all).
async fn push_server() -> ServeProcess {
    ServeProcess::start(&[
        "--admin-token",
        TOKEN,
        "--allow-private-callbacks",
        "--webhook-retry-schedule",
        "0,1,1",
    ])
    .await
}

// ----- HTTP to the server, by hand -----

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a JSON body ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The answer says its body is JSON.
fn assert_json(answer: &Answer) {
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "a JSON answer: {answer:?}"
    );
}

/// One request on a fresh connection (`Connection: close`), answered within
/// 10 s.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} answered within 10 s"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `POST /webhooks` with the admin token.
async fn try_create(addr: SocketAddr, body: &str) -> Answer {
    http(addr, "POST", "/webhooks", Some(TOKEN), body.as_bytes()).await
}

/// Registers a webhook for `channel` at `url`; returns the 201's object.
async fn create_webhook(addr: SocketAddr, channel: &str, url: &str, secret: Option<&str>) -> Value {
    let mut request = serde_json::json!({"channel": channel, "url": url});
    if let Some(secret) = secret {
        request["secret"] = secret.into();
    }
    let answer = try_create(addr, &request.to_string()).await;
    assert_eq!(answer.status, 201, "POST /webhooks {request}: {answer:?}");
    assert_json(&answer);
    answer.json()
}

fn id_of(webhook: &Value) -> String {
    webhook["id"].as_str().expect("an id").to_owned()
}

fn secret_of(webhook: &Value) -> String {
    webhook["secret"].as_str().expect("a secret").to_owned()
}

/// `GET /webhooks`' list, which must answer 200.
async fn list_webhooks(addr: SocketAddr) -> Vec<Value> {
    let answer = http(addr, "GET", "/webhooks", Some(TOKEN), b"").await;
    assert_eq!(answer.status, 200, "GET /webhooks: {answer:?}");
    answer.json()["webhooks"]
        .as_array()
        .unwrap_or_else(|| panic!("a webhooks array: {answer:?}"))
        .clone()
}

/// `GET /webhooks` lists `n` webhooks.
async fn assert_listed(addr: SocketAddr, n: usize) {
    let listed = list_webhooks(addr).await;
    assert_eq!(listed.len(), n, "{n} webhooks listed: {listed:?}");
}

/// `GET /webhooks/{id}`, which must answer 200.
async fn get_webhook(addr: SocketAddr, id: &str) -> Value {
    let answer = http(addr, "GET", &format!("/webhooks/{id}"), Some(TOKEN), b"").await;
    assert_eq!(answer.status, 200, "GET /webhooks/{id}: {answer:?}");
    answer.json()
}

/// `GET /webhooks/{id}/deliveries`' list.
async fn deliveries(addr: SocketAddr, id: &str) -> Vec<Value> {
    let path = format!("/webhooks/{id}/deliveries");
    let answer = http(addr, "GET", &path, Some(TOKEN), b"").await;
    assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
    answer.json()["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("a deliveries array: {answer:?}"))
        .clone()
}

/// Polls `GET /webhooks/{id}` until `done` holds of it (at most DEADLINE).
async fn wait_for_webhook(
    addr: SocketAddr,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let webhook = get_webhook(addr, id).await;
        if done(&webhook) {
            return webhook;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {DEADLINE:?}: {webhook}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `body` on `channel` (no publish token); returns its id.
async fn publish(addr: SocketAddr, channel: &str, body: &[u8]) -> String {
    let answer = http(addr, "POST", &format!("/channels/{channel}"), None, body).await;
    assert_eq!(answer.status, 202, "publish: {answer:?}");
    answer.json()["id"].as_str().expect("an id").to_owned()
}

#[test]
fn the_tests_signer_matches_the_standard_webhooks_example() {
    // The example in the Standard Webhooks specification.
    assert_eq!(
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

// ----- the admin routes -----

#[tokio::test]
async fn webhooks_are_created_listed_fetched_and_deleted() {
    let server = push_server().await;
    let addr = server.addr();
    let url = "http://127.0.0.1:9/hooks/a?k=v";
    let before = now_unix();
    let generated = create_webhook(addr, "news", url, None).await;
    let id = id_of(&generated);
    assert!(id.starts_with("wh_"), "{generated}");
    assert_eq!(generated["channel"], "news", "{generated}");
    assert_eq!(generated["url"], url, "{generated}");
    assert_eq!(generated["state"], "active", "{generated}");
    assert!(generated["disabled_reason"].is_null(), "{generated}");
    assert!(generated["last_delivered"].is_null(), "{generated}");
    let created_at = generated["created_at"].as_u64().expect("created_at");
    assert!(
        (before.saturating_sub(2)..=now_unix() + 2).contains(&created_at),
        "created_at {created_at} is now: {generated}"
    );
    let secret = secret_of(&generated);
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| panic!("whsec_ and base64: {secret:?}"));
    assert!(
        (24..=64).contains(&key.len()),
        "a 24- to 64-byte key: {secret}"
    );

    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let chosen = create_webhook(addr, "sports", "http://127.0.0.1:9/", Some(given)).await;
    assert_eq!(chosen["secret"], given, "{chosen}");
    let chosen_id = id_of(&chosen);
    assert_ne!(chosen_id, id);
    let again = create_webhook(addr, "news", url, None).await;
    assert_ne!(secret_of(&again), secret, "each generated secret is fresh");

    let listed = list_webhooks(addr).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for webhook in &listed {
        assert!(
            webhook.get("secret").is_none(),
            "no secret listed: {webhook}"
        );
    }
    let first = listed
        .iter()
        .find(|w| w["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} listed: {listed:?}"));
    assert_eq!(first["channel"], "news");
    assert_eq!(first["url"], url);
    assert_eq!(first["state"], "active");
    assert!(listed.iter().any(|w| w["id"] == chosen_id.as_str()));

    let one = get_webhook(addr, &id).await;
    assert!(one.get("secret").is_none(), "no secret: {one}");
    for field in [
        "id",
        "channel",
        "url",
        "state",
        "disabled_reason",
        "created_at",
        "last_delivered",
    ] {
        assert_eq!(one[field], generated[field], "{field}: {one}");
    }

    let path = format!("/webhooks/{id}");
    assert_eq!(
        http(addr, "DELETE", &path, Some(TOKEN), b"").await.status,
        204
    );
    assert_eq!(http(addr, "GET", &path, Some(TOKEN), b"").await.status, 404);
    assert_eq!(
        http(addr, "DELETE", &path, Some(TOKEN), b"").await.status,
        404
    );
    let left = list_webhooks(addr).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|w| w["id"] != id.as_str()), "{left:?}");
    let none = http(addr, "GET", "/webhooks/wh_nosuchhook", Some(TOKEN), b"").await;
    assert_eq!(none.status, 404, "{none:?}");
}

#[tokio::test]
async fn admin_routes_want_the_admin_bearer() {
    let server = push_server().await;
    let addr = server.addr();
    let webhook = create_webhook(addr, "news", "http://127.0.0.1:9/", None).await;
    let one = format!("/webhooks/{}", id_of(&webhook));
    let deliveries = format!("{one}/deliveries");
    let body = br#"{"channel":"news","url":"http://127.0.0.1:9/"}"#;
    let routes: [(&str, &str, &[u8]); 5] = [
        ("POST", "/webhooks", body),
        ("GET", "/webhooks", b""),
        ("GET", &one, b""),
        ("GET", &deliveries, b""),
        ("DELETE", &one, b""),
    ];
    for (method, path, body) in routes {
        for bearer in [None, Some("wrong-token"), Some("the-admin-toke")] {
            let answer = http(addr, method, path, bearer, body).await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} with {bearer:?}: {answer:?}"
            );
        }
    }
    // Nothing was created or deleted by those.
    assert_listed(addr, 1).await;
}

#[tokio::test]
async fn bad_webhooks_are_refused_with_400() {
    let server = push_server().await;
    let addr = server.addr();
    let cases = [
        ("bad JSON", r#"{"channel":"news","url":"#),
        ("not an object", r#"["news"]"#),
        ("no channel", r#"{"url":"http://127.0.0.1:9/"}"#),
        ("no url", r#"{"channel":"news"}"#),
        ("ftp URL", r#"{"channel":"news","url":"ftp://127.0.0.1/x"}"#),
        ("not a URL", r#"{"channel":"news","url":"not a url"}"#),
        (
            "secret without whsec_",
            r#"{"channel":"news","url":"http://127.0.0.1:9/","secret":"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
        ),
        (
            "secret not base64",
            r#"{"channel":"news","url":"http://127.0.0.1:9/","secret":"whsec_not*base64!!"}"#,
        ),
    ];
    for (what, body) in cases {
        let answer = try_create(addr, body).await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_json(&answer);
        let error = answer.json();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: an error reason: {answer:?}"
        );
    }
    assert_listed(addr, 0).await;
}

#[tokio::test]
async fn private_callbacks_are_refused_without_the_flag() {
    let server = ServeProcess::start(&["--admin-token", TOKEN]).await;
    let receiver = Receiver::answering(200).await;
    let body = serde_json::json!({"channel": "news", "url": receiver.url("/")}).to_string();
    let answer = try_create(server.addr(), &body).await;
    assert!(
        (400..500).contains(&answer.status),
        "a 4xx for a loopback URL: {answer:?}"
    );
    assert!(
        answer.body.contains("loopback"),
        "says loopback: {answer:?}"
    );
    assert_listed(server.addr(), 0).await;
}

#[tokio::test]
async fn without_an_admin_token_there_are_no_webhook_routes() {
    let server = ServeProcess::start(&[]).await;
    let addr = server.addr();
    let body = br#"{"channel":"news","url":"http://127.0.0.1:9/"}"#;
    for bearer in [None, Some(TOKEN)] {
        let answer = http(addr, "POST", "/webhooks", bearer, body).await;
        assert_eq!(
            answer.status, 404,
            "POST /webhooks with {bearer:?}: {answer:?}"
        );
        let answer = http(addr, "GET", "/webhooks", bearer, b"").await;
        assert_eq!(
            answer.status, 404,
            "GET /webhooks with {bearer:?}: {answer:?}"
        );
    }
    // The server itself is up.
    assert_eq!(http(addr, "GET", "/healthz", None, b"").await.status, 200);
}

// ----- deliveries -----

#[tokio::test]
async fn deliveries_are_signed_per_standard_webhooks() {
    let server = push_server().await;
    let addr = server.addr();
    let mut receiver = Receiver::answering(200).await;
    let webhook = create_webhook(addr, "orders", &receiver.url("/hooks/orders?k=v"), None).await;
    let secret = secret_of(&webhook);

    let cases: [(&[u8], &str); 3] = [
        (br#"{"order":17,"items":["a","b"]}"#, "application/json"),
        (
            "plain text, h\u{e9}llo".as_bytes(),
            "text/plain; charset=utf-8",
        ),
        (b"\xff\x00\xfe binary", "application/octet-stream"),
    ];
    for (body, content_type) in cases {
        let id = publish(addr, "orders", body).await;
        let seen = receiver.next().await;
        assert_eq!(seen.method, "POST", "{seen:?}");
        assert_eq!(seen.target, "/hooks/orders?k=v", "the URL's path and query");
        assert_eq!(seen.body, body, "the payload as the body");
        assert_eq!(seen.webhook_id(), id, "webhook-id is the message id");
        assert_eq!(seen.header("rtwire-channel"), Some("orders"), "{seen:?}");
        assert_eq!(seen.header("content-type"), Some(content_type), "{seen:?}");
        assert_signed(&seen, &secret);
        // Signed over this body only: another body does not verify.
        let timestamp = seen.header("webhook-timestamp").unwrap();
        let forged = sign(&secret, &id, timestamp, b"something else");
        assert!(!seen.header("webhook-signature").unwrap().contains(&forged));
    }

    // A given secret signs too.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut other = Receiver::answering(204).await;
    create_webhook(addr, "given", &other.url("/"), Some(given)).await;
    let id = publish(addr, "given", br#"{"given":true}"#).await;
    let seen = other.next().await;
    assert_eq!(seen.webhook_id(), id);
    assert_signed(&seen, given);

    let webhook = wait_for_webhook(addr, &id_of(&webhook), "last_delivered set", |w| {
        !w["last_delivered"].is_null()
    })
    .await;
    assert_eq!(webhook["state"], "active");
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_schedule() {
    let server = push_server().await;
    let addr = server.addr();
    let mut answered = 0;
    let mut receiver = Receiver::start(move |_| {
        answered += 1;
        Reply::Status(if answered <= 3 { 500 } else { 200 })
    })
    .await;
    let webhook = create_webhook(addr, "retry", &receiver.url("/"), None).await;
    let (id, secret) = (id_of(&webhook), secret_of(&webhook));
    let body = br#"{"attempts":"four"}"#;
    let message = publish(addr, "retry", body).await;

    let mut attempts = Vec::new();
    for _ in 0..4 {
        let seen = receiver.next().await;
        assert_eq!(
            seen.webhook_id(),
            message,
            "the same webhook-id on every attempt"
        );
        assert_eq!(seen.body, body, "the same body on every attempt");
        assert_signed(&seen, &secret);
        attempts.push(seen);
    }
    let replies: Vec<Reply> = attempts.iter().map(|s| s.reply).collect();
    assert_eq!(
        replies,
        [500, 500, 500, 200].map(Reply::Status),
        "the script's answers"
    );
    let gap = |n: usize| attempts[n].at - attempts[n - 1].at;
    assert!(
        gap(1) < Duration::from_secs(1),
        "retry 1 at once: {:?}",
        gap(1)
    );
    assert!(
        gap(2) >= Duration::from_millis(900),
        "retry 2 after ~1 s: {:?}",
        gap(2)
    );
    assert!(
        gap(3) >= Duration::from_millis(900),
        "retry 3 after ~1 s: {:?}",
        gap(3)
    );

    // No 5th attempt: the next request is the next message.
    let second = publish(addr, "retry", b"second").await;
    let next = receiver.next().await;
    assert_eq!(
        next.webhook_id(),
        second,
        "no attempt after the delivered one: {next:?}"
    );
    assert_eq!(next.body, b"second");

    // The log: 3 failed and 1 delivered, attempts 1 to 4, oldest first.
    let deadline = Instant::now() + DEADLINE;
    let log = loop {
        let all = deliveries(addr, &id).await;
        let ours: Vec<Value> = all
            .iter()
            .filter(|d| d["message_id"] == message.as_str())
            .cloned()
            .collect();
        if ours.len() >= 4 {
            break ours;
        }
        assert!(Instant::now() < deadline, "4 attempts logged: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log.len(), 4, "{log:?}");
    let attempt_numbers: Vec<u64> = log.iter().filter_map(|d| d["attempt"].as_u64()).collect();
    assert_eq!(attempt_numbers, [1, 2, 3, 4], "{log:?}");
    let outcomes: Vec<&str> = log.iter().filter_map(|d| d["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        ["failed", "failed", "failed", "delivered"],
        "{log:?}"
    );
    let statuses: Vec<u64> = log.iter().filter_map(|d| d["status"].as_u64()).collect();
    assert_eq!(statuses, [500, 500, 500, 200], "{log:?}");
    let mut last = 0;
    for entry in &log {
        let at = entry["at"]
            .as_u64()
            .unwrap_or_else(|| panic!("at: {entry}"));
        assert!(
            at >= last && now_unix().abs_diff(at) <= 30,
            "times in order: {log:?}"
        );
        last = at;
    }
    for entry in &log[..3] {
        assert!(
            entry["next_retry"].is_u64(),
            "a failed attempt with retries left names its next: {log:?}"
        );
    }
    assert!(
        log[3]["next_retry"].is_null(),
        "nothing after the delivered one: {log:?}"
    );
    assert!(log[3]["error"].is_null(), "{log:?}");
}

#[tokio::test]
async fn a_410_disables_the_endpoint() {
    let server = push_server().await;
    let addr = server.addr();
    let mut gone = Receiver::answering(410).await;
    let mut witness = Receiver::answering(200).await;
    let disabled = id_of(&create_webhook(addr, "c", &gone.url("/gone"), None).await);
    create_webhook(addr, "c", &witness.url("/witness"), None).await;

    let first = publish(addr, "c", b"first").await;
    let seen = gone.next().await;
    assert_eq!(seen.webhook_id(), first);
    assert_eq!(seen.reply, Reply::Status(410));
    assert_eq!(witness.next().await.webhook_id(), first);

    let webhook = wait_for_webhook(addr, &disabled, "state disabled after a 410", |w| {
        w["state"] == "disabled"
    })
    .await;
    assert_eq!(webhook["state"], "disabled");
    let log = deliveries(addr, &disabled).await;
    assert_eq!(log.len(), 1, "one attempt, not retried: {log:?}");
    assert_eq!(log[0]["outcome"], "gone", "{log:?}");
    assert_eq!(log[0]["status"], 410, "{log:?}");

    // A later message reaches the other endpoint on the channel, not this one.
    let later = publish(addr, "c", b"later").await;
    let seen = witness.next().await;
    assert_eq!(seen.webhook_id(), later);
    assert_eq!(seen.body, b"later");
    let more = gone.drain();
    assert!(
        more.is_empty(),
        "nothing sent to a disabled endpoint: {more:?}"
    );
    assert_eq!(deliveries(addr, &disabled).await.len(), 1);
    assert_eq!(get_webhook(addr, &disabled).await["state"], "disabled");
}

#[tokio::test]
async fn a_hanging_receiver_delays_no_one_else() {
    let server = push_server().await;
    let addr = server.addr();
    let mut hanging = Receiver::start(|_| Reply::Hang).await;
    let mut healthy = Receiver::answering(200).await;
    create_webhook(addr, "busy", &hanging.url("/hangs"), None).await;
    create_webhook(addr, "busy", &healthy.url("/answers"), None).await;
    let mut sse = Sse::open(addr, "/channels/busy/events", None).await;

    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(publish(addr, "busy", format!("message {n}").as_bytes()).await);
    }
    for (n, id) in ids.iter().enumerate() {
        let seen = healthy.next().await;
        assert_eq!(&seen.webhook_id(), id, "in publish order");
        assert_eq!(seen.body, format!("message {}", n + 1).as_bytes());
    }
    for (n, id) in ids.iter().enumerate() {
        let event = sse.next().await;
        assert_eq!(&event.id, id, "{event:?}");
        assert_eq!(event.data, [format!("message {}", n + 1)], "{event:?}");
    }
    // The first request to the hanging receiver has arrived...
    let first = hanging.next().await;
    assert_eq!(first.webhook_id(), ids[0]);
    let elapsed = started.elapsed();
    assert!(
        elapsed < DELIVERY_TIMEOUT - Duration::from_secs(1),
        "all this took {elapsed:?}, near rtwire's {DELIVERY_TIMEOUT:?} delivery timeout: cannot tell"
    );
    // ...and is still held, alone.
    let more = hanging.drain();
    assert!(
        more.is_empty(),
        "one request while the first hangs: {more:?}"
    );
    assert_eq!(hanging.hanging.load(Ordering::SeqCst), 1, "still open");
}

#[tokio::test]
async fn retries_keep_publish_order() {
    let server = push_server().await;
    let addr = server.addr();
    // The first message's first two attempts fail; everything else succeeds.
    let mut first: Option<String> = None;
    let mut failed = 0;
    let mut receiver = Receiver::start(move |seen| {
        let id = seen.header("webhook-id").unwrap_or_default().to_owned();
        let first = first.get_or_insert(id.clone());
        if *first == id && failed < 2 {
            failed += 1;
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_webhook(addr, "ordered", &receiver.url("/"), None).await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(publish(addr, "ordered", format!("message {n}").as_bytes()).await);
    }

    let mut requests = Vec::new();
    let mut delivered = Vec::new();
    while delivered.len() < 5 {
        let seen = receiver.next().await;
        let index = ids
            .iter()
            .position(|id| id == seen.webhook_id())
            .unwrap_or_else(|| panic!("a published id: {seen:?}"));
        assert_eq!(seen.body, format!("message {}", index + 1).as_bytes());
        // Only the first message not yet delivered may be sent.
        assert!(
            index <= delivered.len(),
            "message {} sent before message {} was delivered: {requests:?}",
            index + 1,
            delivered.len() + 1
        );
        assert!(
            index >= delivered.len(),
            "message {} sent again after it was delivered: {requests:?}",
            index + 1
        );
        if seen.reply == Reply::Status(200) {
            delivered.push(index + 1);
        }
        requests.push((index + 1, seen.reply));
        assert!(requests.len() <= 12, "too many requests: {requests:?}");
    }
    assert_eq!(delivered, [1, 2, 3, 4, 5], "delivered in publish order");
    let first_attempts = requests.iter().filter(|(n, _)| *n == 1).count();
    assert_eq!(
        first_attempts, 3,
        "message 1 failed twice, then succeeded: {requests:?}"
    );
    assert_eq!(requests.len(), 7, "{requests:?}");
}

/// A rotation: the new secret signs from the next delivery on, the old one
/// beside it (two `v1` entries), and a rotation to a given secret, a bad
/// body and an unknown webhook are answered as such.
#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let server = push_server().await;
    let addr = server.addr();
    let mut receiver = Receiver::answering(200).await;
    let webhook = create_webhook(addr, "rotating", &receiver.url("/"), None).await;
    let (id, old) = (id_of(&webhook), secret_of(&webhook));
    let path = format!("/webhooks/{id}/secret");

    let rotated = http(addr, "POST", &path, Some(TOKEN), b"").await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.json()["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old, "{new}");
    publish(addr, "rotating", b"after the rotation").await;
    let seen = receiver.next().await;
    let signatures = seen.header("webhook-signature").unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert_signed(&seen, &new);
    assert_signed(&seen, &old);
    // The new one comes first.
    let timestamp = seen.header("webhook-timestamp").unwrap();
    assert!(signatures.starts_with(&sign(&new, seen.webhook_id(), timestamp, &seen.body)));

    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = format!(r#"{{"secret":"{given}"}}"#);
    let rotated = http(addr, "POST", &path, Some(TOKEN), body.as_bytes()).await;
    assert_eq!(rotated.json()["secret"], given);
    publish(addr, "rotating", b"again").await;
    let seen = receiver.next().await;
    assert_signed(&seen, given);
    assert_signed(&seen, &new);
    let sign_old = sign(
        &old,
        seen.webhook_id(),
        seen.header("webhook-timestamp").unwrap(),
        &seen.body,
    );
    assert!(
        !seen
            .header("webhook-signature")
            .unwrap()
            .contains(&sign_old),
        "two secrets at most"
    );

    let bad = http(addr, "POST", &path, Some(TOKEN), br#"{"secret":"nope"}"#).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let none = http(addr, "POST", "/webhooks/wh_none/secret", Some(TOKEN), b"").await;
    assert_eq!(none.status, 404);
    let unauthorized = http(addr, "POST", &path, None, b"").await;
    assert_eq!(unauthorized.status, 401);
}
