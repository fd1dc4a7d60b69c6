//! A webhook receiver that verifies what `rtwire serve` sends: the
//! Standard Webhooks signature over `{webhook-id}.{webhook-timestamp}.{body}`
//! and a timestamp within five minutes. Answers 204 to a verified delivery
//! (printing `verified ID BODY`), 401 to anything else (printing
//! `rejected ID: WHY`).
//!
//! ```sh
//! cargo run --example webhook_receiver -- 127.0.0.1:9000 whsec_...
//! rtwire serve --admin-token T --allow-private-callbacks &
//! curl -H 'Authorization: Bearer T' \
//!      -d '{"channel":"orders","url":"http://127.0.0.1:9000/hook","secret":"whsec_..."}' \
//!      http://127.0.0.1:8080/webhooks
//! curl -d '{"order":42}' http://127.0.0.1:8080/channels/orders
//! ```
//!
//! One request per connection and a 64 KiB body at most: enough for an
//! example, not a production server.

use rtwire::http::{HeadLimits, Parse, Request};
use rtwire::push::signature::{verify, WebhookSecret};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_BODY: usize = 64 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: webhook_receiver ADDR whsec_SECRET";
    let addr = args.next().ok_or(usage)?;
    let secret = WebhookSecret::parse(&args.next().ok_or(usage)?)?;
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "webhook_receiver: listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let secret = secret.clone();
        tokio::spawn(async move {
            let answer = tokio::time::timeout(Duration::from_secs(10), serve(stream, &secret));
            if let Ok(Err(e)) = answer.await {
                eprintln!("connection failed: {e}");
            }
        });
    }
}

async fn serve(mut stream: TcpStream, secret: &WebhookSecret) -> std::io::Result<()> {
    let Some((request, body)) = read_request(&mut stream).await? else {
        return stream.write_all(&answer(400)).await;
    };
    let header = |name| request.headers.get(name).unwrap_or("");
    let id = header("webhook-id");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let checked = verify(
        secret,
        id,
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now,
    );
    let status = match checked {
        Ok(()) => {
            println!("verified {id} {}", String::from_utf8_lossy(&body));
            204
        }
        Err(why) => {
            println!("rejected {id}: {why}");
            401
        }
    };
    stream.write_all(&answer(status)).await
}

/// The request head and its `Content-Length` body; `None` if it is not one.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(Request, Vec<u8>)>> {
    let mut buf = Vec::new();
    let limits = HeadLimits::default();
    let (request, used) = loop {
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        match Request::parse(&buf, &limits) {
            Ok(Parse::Complete(request, used)) => break (request, used),
            Ok(Parse::Partial) => continue,
            Err(_) => return Ok(None),
        }
    };
    let length: usize = match request.headers.get("content-length").map(str::parse) {
        Some(Ok(n)) if n <= MAX_BODY => n,
        _ => return Ok(None),
    };
    let mut body = buf.split_off(used);
    while body.len() < length {
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some((request, body)))
}

fn answer(status: u16) -> Vec<u8> {
    format!("HTTP/1.1 {status} {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}
