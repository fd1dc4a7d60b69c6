//! The outbound push client against local receivers written here, on a
//! bare `TcpListener` (none of the client's own code on the server side).
#![cfg(feature = "serve")]

mod common;

use std::time::Duration;

use rtwire::push::client::{Client, ClientConfig, ClientError, OutboundRequest};
use rtwire::push::url::{AddressClass, CallbackUrl};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A safety net so a broken client fails a test instead of hanging it.
const HANG: Duration = Duration::from_secs(10);

/// A client for local receivers: private addresses allowed.
fn local_client() -> Client {
    let mut config = ClientConfig::default();
    config.allow_private = true;
    config.timeout = HANG;
    Client::new(config)
}

fn url_of(listener: &TcpListener, path: &str) -> CallbackUrl {
    let port = listener.local_addr().unwrap().port();
    CallbackUrl::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap()
}

async fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// One request as the receiver saw it: the head's text and the body.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one request: the head up to the blank line, then
/// `Content-Length` bytes of body. `None` at EOF before a whole request.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut seen = Seen {
        head,
        body: Vec::new(),
    };
    let len: usize = seen
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    seen.body = vec![0; len];
    stream.read_exact(&mut seen.body).await.ok()?;
    Some(seen)
}

/// Serves every connection with `answer` for each request, reporting
/// each request on the channel.
fn serve_all(listener: TcpListener, answer: &'static [u8]) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(seen) = read_request(&mut stream).await {
                    let _ = tx.send(seen);
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

async fn send(
    client: &Client,
    request: OutboundRequest,
) -> Result<rtwire::push::client::OutboundResponse, ClientError> {
    tokio::time::timeout(HANG * 2, client.send(&request))
        .await
        .expect("the client's own deadline")
}

#[tokio::test]
async fn a_post_is_written_as_asked_and_a_2xx_read_back() {
    let listener = listen().await;
    let url = url_of(&listener, "/hooks/in?src=rtwire&x=%2F");
    let port = listener.local_addr().unwrap().port();
    let mut seen = serve_all(
        listener,
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-Reply: yes\r\n\r\nok",
    );
    let request = OutboundRequest::post(url, &b"{\"n\":1}"[..])
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1");
    let response = send(&local_client(), request).await.unwrap();
    assert_eq!(response.status, 202);
    assert_eq!(&response.body[..], b"ok");
    assert_eq!(response.headers.get("x-reply"), Some("yes"));
    let got = seen.try_recv().unwrap();
    assert_eq!(
        got.request_line(),
        "POST /hooks/in?src=rtwire&x=%2F HTTP/1.1"
    );
    assert_eq!(
        got.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("webhook-id"), Some("msg_1"));
    assert_eq!(got.body, b"{\"n\":1}");
}

#[tokio::test]
async fn gone_and_server_errors_are_statuses_not_errors() {
    for (answer, status) in [
        (&b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n"[..], 410),
        (
            &b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"[..],
            500,
        ),
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], 204),
    ] {
        let listener = listen().await;
        let url = url_of(&listener, "/");
        let _seen = serve_all(listener, answer);
        let response = send(&local_client(), OutboundRequest::post(url, &b"x"[..]))
            .await
            .unwrap();
        assert_eq!(response.status, status);
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let listener = listen().await;
    let port = listener.local_addr().unwrap().port();
    let url = url_of(&listener, "/old");
    let answer: &'static [u8] = Box::leak(
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}/new\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
            .into_boxed_slice(),
    );
    let mut seen = serve_all(listener, answer);
    let response = send(&local_client(), OutboundRequest::post(url, &b"x"[..]))
        .await
        .unwrap();
    assert_eq!(response.status, 307);
    assert_eq!(
        response.headers.get("location"),
        Some(format!("http://127.0.0.1:{port}/new").as_str())
    );
    // Any request that followed would have been answered, so seen, before
    // send returned.
    assert_eq!(
        seen.try_recv().unwrap().request_line(),
        "POST /old HTTP/1.1"
    );
    assert!(seen.try_recv().is_err(), "the redirect was followed");
}

#[tokio::test]
async fn a_chunked_body_in_pieces() {
    let listener = listen().await;
    let url = url_of(&listener, "/");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap();
        for piece in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"5\r\nhel",
            b"lo\r\n7;ext=1\r\n, world\r\n",
            b"0\r\nX-Trailer: 1\r\n\r\n",
        ] {
            stream.write_all(piece).await.unwrap();
            stream.flush().await.unwrap();
        }
        // Keep the connection open: the body must end by its framing.
        let _ = read_request(&mut stream).await;
    });
    let response = send(&local_client(), OutboundRequest::get(url))
        .await
        .unwrap();
    assert_eq!(&response.body[..], b"hello, world");
}

/// A receiver that answers with `head` then writes `filler` forever.
fn endless(listener: TcpListener, head: &'static [u8], filler: &'static [u8]) {
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap();
        stream.write_all(head).await.unwrap();
        while stream.write_all(filler).await.is_ok() {}
    });
}

/// A GET whose answer must be refused for a body over 1,000 bytes.
async fn too_large(client: &Client, url: CallbackUrl) -> ClientError {
    let err = send(client, OutboundRequest::get(url)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::BodyTooLarge { limit: 1000 }),
        "{err}"
    );
    err
}

#[tokio::test]
async fn a_body_over_the_cap_is_an_error_not_a_hang() {
    let mut config = ClientConfig::default();
    config.allow_private = true;
    config.timeout = HANG;
    config.max_body_bytes = 1000;
    let client = Client::new(config);

    let listener = listen().await;
    let url = url_of(&listener, "/");
    let _seen = serve_all(listener, b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n");
    too_large(&client, url).await;

    let listener = listen().await;
    let url = url_of(&listener, "/");
    // Well-formed 256-byte chunks, without end.
    let chunk = [&b"100\r\n"[..], &[b'c'; 256], b"\r\n"].concat();
    endless(
        listener,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Box::leak(chunk.into_boxed_slice()),
    );
    too_large(&client, url).await;

    let listener = listen().await;
    let url = url_of(&listener, "/");
    endless(listener, b"HTTP/1.1 200 OK\r\n\r\n", &[b'x'; 512]);
    let err = too_large(&client, url).await;
    assert!(err.is_bad_response() && !err.is_caller_fault());
}

#[tokio::test]
async fn a_receiver_that_never_answers_meets_the_deadline() {
    let listener = listen().await;
    let url = url_of(&listener, "/");
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap();
        // Holds the connection open, silent, until the test ends.
        let _ = done_rx.await;
    });
    let mut config = ClientConfig::default();
    config.allow_private = true;
    config.timeout = Duration::from_millis(300);
    let err = send(&Client::new(config), OutboundRequest::post(url, &b"x"[..]))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err}");
    drop(done_tx);
}

#[tokio::test]
async fn a_receiver_that_closes_early() {
    for answer in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ] {
        let listener = listen().await;
        let url = url_of(&listener, "/");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await.unwrap();
            stream.write_all(answer).await.unwrap();
            // Dropped: closed.
        });
        let err = send(&local_client(), OutboundRequest::post(url, &b"x"[..]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Closed),
            "{:?}: {err}",
            String::from_utf8_lossy(answer)
        );
    }
}

#[tokio::test]
async fn garbage_and_interim_responses() {
    let listener = listen().await;
    let url = url_of(&listener, "/");
    let _seen = serve_all(listener, b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let err = send(&local_client(), OutboundRequest::get(url))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BadResponse(_)), "{err}");

    let listener = listen().await;
    let url = url_of(&listener, "/");
    let _seen = serve_all(
        listener,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
    );
    let response = send(&local_client(), OutboundRequest::get(url))
        .await
        .unwrap();
    assert_eq!((response.status, &response.body[..]), (200, &b"!"[..]));
}

#[tokio::test]
async fn one_connection_carries_two_requests() {
    let listener = listen().await;
    let url = url_of(&listener, "/reuse");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // No second connection can be made: the listener is gone.
        drop(listener);
        for n in 0..2 {
            let seen = read_request(&mut stream).await.unwrap();
            tx.send(seen).unwrap();
            let body = format!("answer {n}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
        let _ = read_request(&mut stream).await;
    });
    let client = local_client();
    let first = send(&client, OutboundRequest::post(url.clone(), &b"1"[..]))
        .await
        .unwrap();
    assert_eq!(&first.body[..], b"answer 0");
    assert_eq!(client.idle_connections(), 1);
    let second = send(&client, OutboundRequest::post(url, &b"2"[..]))
        .await
        .unwrap();
    assert_eq!(&second.body[..], b"answer 1");
    assert_eq!(rx.recv().await.unwrap().body, b"1");
    assert_eq!(rx.recv().await.unwrap().body, b"2");
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn a_kept_connection_closed_by_the_receiver_is_replaced() {
    let listener = listen().await;
    let url = url_of(&listener, "/");
    let (closed_tx, closed_rx) = oneshot::channel();
    let (count_tx, mut count_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut closed_tx = Some(closed_tx);
        for n in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await.unwrap();
            count_tx.send(n).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            drop(stream); // closed without a "Connection: close"
            if let Some(tx) = closed_tx.take() {
                tx.send(()).unwrap();
            }
        }
    });
    let client = local_client();
    assert_eq!(
        send(&client, OutboundRequest::get(url.clone()))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(client.idle_connections(), 1);
    closed_rx.await.unwrap();
    assert_eq!(
        send(&client, OutboundRequest::get(url))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(count_rx.recv().await, Some(0));
    assert_eq!(count_rx.recv().await, Some(1), "a second connection");
}

#[tokio::test]
async fn private_destinations_are_refused_by_default() {
    let listener = listen().await;
    // A loopback address, and a name that resolves to one.
    let requests = [
        OutboundRequest::post(url_of(&listener, "/"), &b"x"[..]),
        OutboundRequest::get(CallbackUrl::parse("http://localhost:9/").unwrap()),
    ];
    for request in &requests {
        let err = Client::new(ClientConfig::default())
            .send(request)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::NotPublic {
                    class: AddressClass::Loopback,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_caller_fault());
    }
}

#[tokio::test]
async fn a_refused_connection_is_the_peers_fault() {
    let listener = listen().await;
    let url = url_of(&listener, "/");
    drop(listener);
    let err = send(&local_client(), OutboundRequest::get(url))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
    assert!(!err.is_caller_fault());
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn https_needs_the_tls_feature() {
    let url = CallbackUrl::parse("https://127.0.0.1:1/").unwrap();
    let err = local_client()
        .send(&OutboundRequest::get(url))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::HttpsUnsupported), "{err}");
    assert!(err.is_caller_fault());
}

#[cfg(feature = "tls")]
async fn serve_tls_once<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) {
    let seen = read_request(&mut stream).await.unwrap();
    let body = seen.request_line().to_owned();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let _ = read_request(&mut stream).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn https_with_a_trusted_certificate() {
    use common::certs::TestCerts;
    use rtwire::ws::tls::{TlsAcceptor, TlsConnector};

    let certs = TestCerts::new();
    let acceptor =
        TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let listener = listen().await;
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_tls_once(tls).await;
                }
            });
        }
    });
    let url = CallbackUrl::parse(&format!("https://localhost:{port}/secure?q=1")).unwrap();

    let mut config = ClientConfig::default();
    config.allow_private = true;
    config.timeout = HANG;
    config.tls = Some(TlsConnector::from_pem(certs.ca_pem.as_bytes()).unwrap());
    let response = send(&Client::new(config), OutboundRequest::get(url.clone()))
        .await
        .unwrap();
    assert_eq!(&response.body[..], b"GET /secure?q=1 HTTP/1.1");

    // Mozilla's roots do not know the test CA.
    let mut config = ClientConfig::default();
    config.allow_private = true;
    config.timeout = HANG;
    let err = send(&Client::new(config), OutboundRequest::get(url))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
}
