//! `rtwire serve` embedded in a program: the setup of
//! `examples/embed_serve.rs` run in-process (its custom route, its hook,
//! its fallback), and what any fallback handler gets from the server.
#![cfg(feature = "serve")]

#[path = "../examples/embed_serve.rs"]
mod embed_serve;

use rtwire::serve::{HttpRequest, HttpResponse, ServeConfig, Server, TokenAuth};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const KEY: &str = "the test's announce key";

/// A server running until this is dropped.
struct Running {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

fn run(server: Server) -> Running {
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

fn loopback() -> ServeConfig {
    let mut config = ServeConfig::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config
}

/// Sends `request` on `stream` and reads the answer to the end: status,
/// head, body.
async fn exchange_on(mut stream: TcpStream, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

async fn exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    exchange_on(TcpStream::connect(addr).await.unwrap(), request).await
}

fn post(path: &str, authorization: Option<&str>, body: &str) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

/// Opens an SSE stream and reads past its head.
async fn open_events(addr: SocketAddr, channel: &str) -> tokio::io::Lines<BufReader<TcpStream>> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /channels/{channel}/events HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await.unwrap().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    while lines
        .next_line()
        .await
        .unwrap()
        .is_some_and(|l| !l.is_empty())
    {}
    lines
}

/// The `id:` and `data:` of the next event with data.
async fn next_event(lines: &mut tokio::io::Lines<BufReader<TcpStream>>) -> (String, String) {
    let (mut id, mut data) = (String::new(), String::new());
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open");
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = v.to_owned();
        } else if line.is_empty() && !data.is_empty() {
            return (id, data);
        }
    }
}

fn json_id(body: &str) -> String {
    let start = body.find("\"id\":\"").expect("an id") + 6;
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_owned()
}

#[tokio::test]
async fn the_custom_route_publishes_to_sse_subscribers_after_its_own_auth() {
    let (server, _auth) = embed_serve::build(loopback(), KEY).await.unwrap();
    let running = run(server);
    let addr = running.addr;
    let mut events = open_events(addr, embed_serve::CHANNEL).await;

    let (status, _, body) = exchange(addr, &post("/api/announce", None, "sneaky")).await;
    assert_eq!(status, 401, "{body}");
    let wrong = format!("Bearer {KEY}x");
    let (status, _, _) = exchange(addr, &post("/api/announce", Some(&wrong), "sneaky")).await;
    assert_eq!(status, 401);

    let key = format!("Bearer {KEY}");
    let (status, _, body) = exchange(addr, &post("/api/announce", Some(&key), "lunch")).await;
    assert_eq!(status, 202, "{body}");
    let id = json_id(&body);
    assert_eq!(next_event(&mut events).await, (id, "lunch".to_owned()));

    // rtwire's own publish route asks the same hook.
    let (status, _, _) = exchange(addr, &post("/channels/announcements", None, "x")).await;
    assert_eq!(status, 401);
    let (status, _, body) =
        exchange(addr, &post("/channels/announcements", Some(&key), "tea")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        next_event(&mut events).await,
        (json_id(&body), "tea".into())
    );
}

#[tokio::test]
async fn unknown_routes_reach_the_fallback_and_rtwire_keeps_its_own() {
    let (server, _auth) = embed_serve::build(loopback(), KEY).await.unwrap();
    let running = run(server);
    let addr = running.addr;
    let (status, _, body) = exchange(addr, &get("/nowhere")).await;
    assert_eq!(
        (status, body.as_str()),
        (404, "embed_serve: no such route\n")
    );
    let (status, head, _) = exchange(addr, &get("/api/announce")).await;
    assert_eq!(status, 405);
    assert!(head.contains("Allow: POST"), "{head}");
    // rtwire's routes are rtwire's: health, the demo page, a bad method on
    // a channel.
    assert_eq!(exchange(addr, &get("/healthz")).await.2, "ok\n");
    assert!(exchange(addr, &get("/")).await.1.contains("text/html"));
    let (status, _, body) = exchange(addr, &get("/channels/announcements")).await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn the_hook_sees_the_peer_address() {
    let (server, auth) = embed_serve::build(loopback(), KEY).await.unwrap();
    let running = run(server);
    let addr = running.addr;
    for path in ["/api/announce", "/channels/announcements"] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let me = stream.local_addr().unwrap();
        exchange_on(stream, &post(path, None, "x")).await;
        assert_eq!(*auth.last_peer.lock().unwrap(), Some(me), "{path}");
    }
    // And over /ws, for the connection and each command.
    let (mut ws, _) = rtwire::ws::connect(&format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let me = ws.get_ref().local_addr().unwrap();
    assert_eq!(*auth.last_peer.lock().unwrap(), Some(me));
    *auth.last_peer.lock().unwrap() = None;
    let join = r#"{"op":"join","channel":"announcements"}"#;
    ws.send(rtwire::proto::Message::text(join)).await.unwrap();
    let reply = ws.recv().await.unwrap().unwrap();
    assert!(format!("{reply:?}").contains("joined"), "{reply:?}");
    assert_eq!(
        *auth.last_peer.lock().unwrap(),
        Some(me),
        "the join asked too"
    );
}

/// A fallback of the test's own, for what the server does around any
/// handler.
async fn probe(request: HttpRequest) -> HttpResponse {
    match request.path() {
        "/echo" => HttpResponse::new(200)
            .header("X-Method", request.method())
            .header("X-Query", request.query_param("q").unwrap_or_default())
            .header("X-Peer", request.peer_addr().to_string())
            .with_body(request.body().clone()),
        "/forever" => std::future::pending().await,
        "/split" => HttpResponse::new(200).header("X-Bad", "a\r\nSet-Cookie: stolen=1"),
        _ => HttpResponse::text(404, "probe: nothing here\n"),
    }
}

async fn start_probe(config: ServeConfig) -> Running {
    let server = Server::bind(config, TokenAuth::default()).await.unwrap();
    run(server.fallback(probe))
}

#[tokio::test]
async fn a_handler_gets_the_whole_request_under_the_servers_limits() {
    let mut config = loopback();
    config.max_body_bytes = 64;
    config.handler_timeout = Duration::from_millis(200);
    let running = start_probe(config).await;
    let addr = running.addr;

    let stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let (status, head, body) = exchange_on(stream, &post("/echo?q=a%20b", None, "hello")).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    for expected in ["X-Method: POST", "X-Query: a b", &format!("X-Peer: {me}")] {
        assert!(head.contains(expected), "{expected}: {head}");
    }
    // HEAD: the head alone.
    let head_request = "HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, head, body) = exchange(addr, head_request).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(head.contains("X-Method: HEAD"), "{head}");

    // The server's body limit holds before the handler runs.
    let big = "x".repeat(65);
    assert_eq!(exchange(addr, &post("/echo", None, &big)).await.0, 413);
    // A handler that never answers: 503 once its time is up.
    let (status, head, _) = exchange(addr, &get("/forever")).await;
    assert_eq!(status, 503);
    assert!(head.contains("Retry-After"), "{head}");
    // A response that would split the head is not sent.
    let (status, head, body) = exchange(addr, &get("/split")).await;
    assert_eq!(status, 500, "{body}");
    assert!(!head.contains("stolen"), "{head}");
}

#[tokio::test]
async fn without_the_demo_page_the_root_belongs_to_the_handler() {
    let mut config = loopback();
    config.demo_page = false;
    let running = start_probe(config).await;
    let addr = running.addr;
    let (status, _, body) = exchange(addr, &get("/")).await;
    assert_eq!((status, body.as_str()), (404, "probe: nothing here\n"));
}

#[tokio::test]
async fn without_a_handler_unknown_routes_get_rtwires_404() {
    let server = Server::bind(loopback(), TokenAuth::default())
        .await
        .unwrap();
    let running = run(server);
    let addr = running.addr;
    let (status, _, body) = exchange(addr, &get("/nowhere")).await;
    assert_eq!((status, body.as_str()), (404, "no such route\n"));
}
