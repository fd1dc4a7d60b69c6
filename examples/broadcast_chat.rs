//! A chat server: each text message a client sends goes to every other
//! client, as `NICK: TEXT`. The nickname comes from the upgrade request,
//! `ws://HOST/?nick=NAME` or an `X-Nick: NAME` header, which the server
//! reads with [`Upgrade`] before answering; a request without one is
//! refused with `400` and a reason.
//!
//! ```text
//! cargo run --example broadcast_chat -- 127.0.0.1:9002
//! ```
//!
//! It prints `broadcast_chat: listening on ws://ADDR` once bound; pass port
//! 0 for any free port. Messages fan out through a
//! `tokio::sync::broadcast` channel of bounded length: a client that reads
//! too slowly skips what it missed and is told how many.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rtwire::http::Request;
use rtwire::proto::{Config, Keepalive, Message};
use rtwire::ws::{self, AcceptConfig, AcceptResponse, Rejection, Upgrade};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};

/// Chat lines are short: anything longer fails the connection with 1009.
const MAX_MESSAGE: usize = 16 << 10;
/// Messages each client may fall behind before it skips some.
const BACKLOG: usize = 64;

/// One chat line and who sent it, so the sender does not get it back.
#[derive(Clone)]
struct Post {
    from: u64,
    message: Message,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "broadcast_chat: listening on ws://{}",
        listener.local_addr()?
    );
    let (room, _) = broadcast::channel::<Post>(BACKLOG);
    let next_id = AtomicU64::new(0);
    loop {
        let (tcp, _) = listener.accept().await?;
        let room = room.clone();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = chat(tcp, room, id).await {
                eprintln!("connection {id}: {e}");
            }
        });
    }
}

fn accept_config() -> AcceptConfig {
    // A vanished client is noticed: pinged after 30 s of silence, dropped
    // if it does not answer within 10 s.
    let keepalive = Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
    };
    let connection = Config::default()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .keepalive(Some(keepalive));
    AcceptConfig::default().connection(connection)
}

/// `?nick=NAME` or `X-Nick: NAME`: 1 to 32 of `A-Z a-z 0-9 _ -`.
fn nickname(request: &Request) -> Option<String> {
    let from_query = request
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("nick=")));
    let nick = from_query.or_else(|| request.headers.get("x-nick"))?;
    let valid = (1..=32).contains(&nick.len())
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then(|| nick.to_owned())
}

async fn chat(tcp: TcpStream, room: broadcast::Sender<Post>, id: u64) -> Result<(), ws::Error> {
    let upgrade = Upgrade::read_tcp(tcp, &accept_config()).await?;
    let Some(nick) = nickname(upgrade.request()) else {
        let reason = "a nickname, please: ?nick=NAME or X-Nick: NAME (1-32 of A-Z a-z 0-9 _ -)\n";
        return upgrade.reject(Rejection::new(400).body(reason)).await;
    };
    if let Some(peer) = upgrade.peer_addr() {
        eprintln!("{nick} joined from {peer}");
    }
    // Subscribed before the 101 is sent: once a client's connect returns,
    // it hears every message sent after.
    let mut inbox = room.subscribe();
    let socket = upgrade.accept(AcceptResponse::new()).await?;
    let (mut read, mut write) = socket.split();

    let incoming = async {
        while let Some(message) = read.recv().await? {
            if let Message::Text(text) = message {
                let line = Message::text(format!("{nick}: {}", text.as_str()));
                // An error only means nobody is listening.
                let _ = room.send(Post {
                    from: id,
                    message: line,
                });
            }
        }
        Ok(())
    };
    let outgoing = async {
        loop {
            match inbox.recv().await {
                Ok(post) if post.from == id => {}
                Ok(post) => write.send(post.message).await?,
                Err(RecvError::Lagged(missed)) => {
                    let notice = format!("* too slow: {missed} messages skipped");
                    write.send(Message::text(notice)).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    };
    // Whichever ends first (the client left, or a write failed) ends both.
    let result = tokio::select! {
        result = incoming => result,
        result = outgoing => result,
    };
    eprintln!("{nick} left");
    result
}
