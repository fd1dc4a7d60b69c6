//! `rtwire serve` embedded in a program: the setup of
//! `examples/embed_serve.rs` run in-process (its custom route, its hook,
//! its fallback), and what any fallback handler gets from the server.
#![cfg(feature = "serve")]

mod common;
#[path = "../examples/embed_serve.rs"]
mod embed_serve;

use common::serve::{
    exchange, exchange_on, get_request as get, json_field, post_request as post, Sse,
};

use rtwire::serve::{HttpRequest, HttpResponse, ServeConfig, Server, TokenAuth};
use std::net::SocketAddr;
use std::time::Duration;
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

#[tokio::test]
async fn the_custom_route_publishes_to_sse_subscribers_after_its_own_auth() {
    let (server, _auth) = embed_serve::build(loopback(), KEY).await.unwrap();
    let running = run(server);
    let addr = running.addr;
    let mut events = Sse::open(
        addr,
        &format!("/channels/{}/events", embed_serve::CHANNEL),
        None,
    )
    .await;

    let (status, _, body) = exchange(addr, &post("/api/announce", None, "sneaky")).await;
    assert_eq!(status, 401, "{body}");
    let wrong = format!("Bearer {KEY}x");
    let (status, _, _) = exchange(addr, &post("/api/announce", Some(&wrong), "sneaky")).await;
    assert_eq!(status, 401);

    let key = format!("Bearer {KEY}");
    let (status, _, body) = exchange(addr, &post("/api/announce", Some(&key), "lunch")).await;
    assert_eq!(status, 202, "{body}");
    let id = json_field(&body, "id").expect("an id");
    let event = events.next().await;
    assert_eq!((event.id, event.data), (id, vec!["lunch".to_owned()]));

    // rtwire's own publish route asks the same hook.
    let (status, _, _) = exchange(addr, &post("/channels/announcements", None, "x")).await;
    assert_eq!(status, 401);
    let (status, _, body) =
        exchange(addr, &post("/channels/announcements", Some(&key), "tea")).await;
    assert_eq!(status, 202, "{body}");
    let event = events.next().await;
    assert_eq!(
        (event.id, event.data),
        (json_field(&body, "id").unwrap(), vec!["tea".to_owned()])
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
    let (status, head, body) = exchange(
        addr,
        &get("/channels/announcements").replacen("GET", "DELETE", 1),
    )
    .await;
    assert_eq!(status, 405, "{body}");
    assert!(head.contains("Allow: GET, HEAD, POST"), "{head}");
    // A channel's own URL is its topic: nothing published yet.
    let (status, head, _) = exchange(addr, &get("/channels/announcements")).await;
    assert_eq!(status, 204, "{head}");
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
    let me = ws.get_ref().get_ref().local_addr().unwrap();
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
