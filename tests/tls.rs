//! `wss://` and TLS servers: rustls under the `ws` front-end, with
//! certificates made at run time.
#![cfg(feature = "tls")]

mod common;

use common::certs::TestCerts;
use rtwire::proto::{CloseCode, Message};
use rtwire::ws::tls::{TlsAcceptor, TlsConnector, TlsError};
use rtwire::ws::{self, ConnectConfig, Error};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A TLS WebSocket echo server for one connection; returns its address
/// and the task, which ends with the server side's result.
async fn echo_once(
    acceptor: TlsAcceptor,
) -> (SocketAddr, tokio::task::JoinHandle<Result<(), Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let tls = acceptor.accept(tcp).await?;
        assert!(tls.is_tls());
        assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut ws = ws::accept(tls).await?;
        while let Some(message) = ws.recv().await? {
            if message.is_data() {
                ws.send(message).await?;
            }
        }
        Ok(())
    });
    (addr, task)
}

fn trusting(certs: &TestCerts) -> ConnectConfig {
    ConnectConfig::default().tls(TlsConnector::from_pem(certs.ca_pem.as_bytes()).unwrap())
}

#[tokio::test]
async fn wss_echoes_a_large_message_under_a_private_ca() {
    let certs = TestCerts::new();
    let acceptor =
        TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let (addr, server) = echo_once(acceptor).await;
    let url = format!("wss://localhost:{}/echo", addr.port());
    let (mut ws, response) = ws::connect_with(&url, &trusting(&certs)).await.unwrap();
    assert_eq!(response.status, 101);
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    match ws.recv().await.unwrap() {
        Some(Message::Binary(echoed)) => assert!(echoed == big, "echo differs"),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    while ws.recv().await.unwrap().is_some() {}
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_ip_address_url_is_checked_against_the_certificate() {
    let certs = TestCerts::new();
    let dir = certs.write_to_temp_dir();
    let acceptor = TlsAcceptor::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).unwrap();
    let (addr, server) = echo_once(acceptor).await;
    let config =
        ConnectConfig::default().tls(TlsConnector::from_pem_file(dir.join("ca.pem")).unwrap());
    let (mut ws, _) = ws::connect_with(&format!("wss://{addr}/"), &config)
        .await
        .unwrap();
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("over TLS")));
    drop(ws);
    let _ = server.await;
}

#[tokio::test]
async fn a_server_the_client_does_not_trust_is_refused() {
    let certs = TestCerts::new();
    let stranger = TestCerts::new();
    let acceptor =
        TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let (addr, server) = echo_once(acceptor).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let error = ws::connect_with(&url, &trusting(&stranger))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
    // The server sees the handshake fail, and nothing else happens.
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn the_default_roots_do_not_trust_a_private_ca() {
    let certs = TestCerts::new();
    let acceptor =
        TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let (addr, _server) = echo_once(acceptor).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let error = ws::connect(&url).await.unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
}

#[tokio::test]
async fn wss_to_a_plain_server_fails_as_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // A plain WebSocket server: the ClientHello is a bad request.
        ws::accept(tcp).await
    });
    let certs = TestCerts::new();
    let url = format!("wss://localhost:{}/", addr.port());
    let error = ws::connect_with(&url, &trusting(&certs)).await.unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    assert!(server.await.unwrap().is_err());
}

#[test]
fn bad_pem_inputs_are_the_callers_errors() {
    let certs = TestCerts::new();
    assert!(matches!(
        TlsAcceptor::from_pem(b"not a pem", certs.key_pem.as_bytes()),
        Err(TlsError::NoCertificate)
    ));
    assert!(matches!(
        TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), b""),
        Err(TlsError::NoPrivateKey)
    ));
    let other = TestCerts::new();
    let mismatched = TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), other.key_pem.as_bytes());
    assert!(
        matches!(mismatched, Err(TlsError::Rustls(_))),
        "{mismatched:?}"
    );
    let missing = TlsAcceptor::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem");
    match missing {
        Err(TlsError::Io { path, .. }) => assert!(path.ends_with("cert.pem")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        TlsConnector::from_pem(b""),
        Err(TlsError::NoCertificate)
    ));
}
