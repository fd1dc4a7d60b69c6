//! `GET /ws`: one WebSocket for many rooms, with JSON commands.
//!
//! From the client (text messages):
//!
//! | command | what |
//! | --- | --- |
//! | `{"op":"join","channel":"room","since":"ID"}` | subscribe; `since` optional |
//! | `{"op":"leave","channel":"room"}` | unsubscribe |
//! | `{"op":"publish","channel":"room","data":"hi","except_self":true}` | to the room; `except_self` skips the sender's own socket |
//! | `{"op":"send","user":"bob","data":"hi"}` | to one user (their private room `user:bob`) |
//! | `{"op":"presence","channel":"room"}` | who is in the room: `{"type":"presence","channel":"room","members":[…]}` |
//! | `{"op":"ping"}` | `{"type":"pong"}`: for clients that cannot see WebSocket pings (browsers) |
//!
//! Any command may carry `"ref":"…"` (a string of at most 64 bytes): its
//! reply, whether `joined`, `left`, `published`, `presence`, `pong` or
//! `error`, carries the same `ref`. Every command gets exactly one reply,
//! in the order the commands came.
//!
//! `data_b64` may replace `data` for binary payloads. Unknown fields are
//! ignored and `null` is as absent; a field given twice, a known field of
//! the wrong type, or an unknown `op` gets an `error` reply (the rules are
//! in the `json` module). To the client:
//! `{"type":"message","channel":"room","id":"ID","data":"hi"}` for each
//! delivery, `{"type":"joined","channel":"room","resume":"exact","since":"ID"}`
//! (`since`: where the subscription starts, to rejoin from after a drop),
//! `{"type":"left",...}`, `{"type":"published","channel":"room","id":"ID"}`,
//! and `{"type":"error","reason":"..."}` for a bad command. A client with
//! an identity (a verified user token, see [`TokenAuth`](super::TokenAuth))
//! is joined to `user:NAME` from the start, and is present (the
//! [`presence`](crate::hub::presence) module) in every room it joins;
//! every socket in a room is told who comes and goes:
//! `{"type":"presence_change","channel":"room","joined":["carol"],"left":[]}`.
//!
//! A socket that cannot keep up with a room is closed with 1013 (try again
//! later) and the last id it got, from which it can rejoin with `since`.
//! A socket joins at most `ws_max_rooms` rooms, is closed with 1008 after
//! `ws_idle_timeout` in no room, is pinged when silent (`ws_keepalive`),
//! and is dropped when it accepts no bytes for `write_timeout`.

use bytes::Bytes;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::broadcast;

use super::auth::{Action, AuthRequest};
use super::http_conn::HttpConn;
use super::json::{self, decode_tagged, encode_delivery, Command, JsonId, Reply, ResumeFields};
use super::metrics::{Counted, Transport};
use super::routes::check_private;
use super::Stream;
use super::{App, BATCH_BYTES, BATCH_MESSAGES};
use crate::http::Request;
use crate::hub::presence::PresenceChange;
use crate::hub::{
    Closed, FormatKey, HubMessage, MessageId, Presence, PresenceHold, SenderId, Since,
    SubscribeOptions, Subscription,
};
use crate::proto::close::truncate_reason;
use crate::proto::{CloseCode, Config, Message, Utf8Bytes};
use crate::ws::{self, AcceptConfig, WebSocket};
use std::net::SocketAddr;

/// What a socket's rooms have for it.
enum Delivery {
    Message(Arc<HubMessage>),
    /// The socket fell behind in a room, or the room's channel started
    /// over (the broker lost messages or its history): it is closed with
    /// 1013 and this reason, which names the id to rejoin after.
    Rejoin(String),
    /// A notice that is not a message (presence), as JSON text.
    Notice(String),
}

/// The next presence change of a room, with the receiver it came from.
type NextChange = Pin<
    Box<
        dyn Future<
                Output = (
                    Result<PresenceChange, broadcast::error::RecvError>,
                    broadcast::Receiver<PresenceChange>,
                ),
            > + Send
            + Sync,
    >,
>;

/// A joined room, served by the socket's own task (no task per room: a
/// message reaches the socket with one wake-up): its subscription, its
/// presence changes, and the socket's identity held present in it.
struct Room {
    name: Box<str>,
    subscription: Subscription,
    /// Ended (the hub shut down): no longer polled.
    ended: bool,
    changes: Option<NextChange>,
    presence: Presence,
    _present: Option<PresenceHold>,
}

fn next_change(mut watch: broadcast::Receiver<PresenceChange>) -> NextChange {
    Box::pin(async move { (watch.recv().await, watch) })
}

impl Room {
    /// The room's next delivery, or `Pending` with `cx` woken at the next.
    fn poll_delivery(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        if !self.ended {
            match self.subscription.poll_recv(cx) {
                Poll::Ready(next) => {
                    if let Some(delivery) = self.delivery(next) {
                        return Poll::Ready(delivery);
                    }
                }
                Poll::Pending => {}
            }
        }
        let Some(changes) = &mut self.changes else {
            return Poll::Pending;
        };
        let Poll::Ready((change, watch)) = changes.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let notice = match change {
            Ok(change) => json::presence_change(&change),
            // Changes were missed: the whole list instead.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                json::presence_list(&self.name, &self.presence.snapshot(&self.name).members)
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.changes = None;
                return Poll::Pending;
            }
        };
        self.changes = Some(next_change(watch));
        Poll::Ready(Delivery::Notice(notice))
    }

    /// The next message already queued, without waiting.
    fn try_delivery(&mut self) -> Option<Delivery> {
        if self.ended || !self.subscription.had_more() {
            return None;
        }
        let next = self.subscription.try_recv().transpose()?;
        self.delivery(next)
    }

    /// What a message taken, or the subscription's end, means to the socket.
    fn delivery(&mut self, next: Result<Arc<HubMessage>, Closed>) -> Option<Delivery> {
        let name = &self.name;
        let last = || rejoin_point(self.subscription.last_seen());
        match next {
            Ok(message) => Some(Delivery::Message(message)),
            Err(Closed::Lagged) => Some(Delivery::Rejoin(format!(
                "too slow on {name}; rejoin since {}",
                last()
            ))),
            Err(Closed::Reset) => Some(Delivery::Rejoin(format!(
                "{name} was reset; rejoin since {}",
                last()
            ))),
            Err(Closed::Shutdown) => {
                self.ended = true;
                None
            }
        }
    }
}

/// The id a client rejoins after; empty before any message.
fn rejoin_point(last: Option<MessageId>) -> String {
    last.map(|id| id.to_string()).unwrap_or_default()
}

/// A socket's rooms, inline in one allocation: a delivery reads one
/// block, where a map's control bytes and a box per room were two misses
/// of the cache more per socket. Found by name with a scan: there are at
/// most `ws_max_rooms`, and commands are rare next to deliveries.
#[derive(Default)]
struct Rooms(Vec<Room>);

impl Rooms {
    fn get(&self, name: &str) -> Option<&Room> {
        self.0.iter().find(|room| &*room.name == name)
    }

    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a room not joined yet. Grows by doubling from exactly one:
    /// a `Vec`'s first push would reserve four, and most sockets are in
    /// one room.
    fn insert(&mut self, room: Room) {
        debug_assert!(!self.contains(&room.name));
        if self.0.len() == self.0.capacity() {
            self.0.reserve_exact(self.0.len().max(1));
        }
        self.0.push(room);
    }

    fn remove(&mut self, name: &str) -> Option<Room> {
        let at = self.0.iter().position(|room| &*room.name == name)?;
        Some(self.0.remove(at))
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// The next delivery from any room, waiting for one.
    fn poll_delivery(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        for room in &mut self.0 {
            if let Poll::Ready(delivery) = room.poll_delivery(cx) {
                return Poll::Ready(delivery);
            }
        }
        Poll::Pending
    }

    /// The next message already queued in any room, without waiting.
    fn try_delivery(&mut self) -> Option<Delivery> {
        self.0.iter_mut().find_map(Room::try_delivery)
    }
}

struct Session<'a> {
    app: &'a App,
    /// The upgrade request, shown to the hook for every command.
    asker: AuthRequest<'a>,
    identity: Option<String>,
    sender: SenderId,
    rooms: Rooms,
}

/// The socket `serve` serves.
type Socket = WebSocket<Counted<Stream>>;

/// Upgrades the connection and serves the socket until it closes.
///
/// One box for the session and one, made first, for the handshake: a
/// future keeps room for its captures and for the largest state of what
/// it awaits for as long as it lives, and the handshake's (the connection
/// and its read buffer, the accept configuration) is done with once the
/// socket is open. The handshake hands back the request, which the session
/// keeps: the auth hook sees it for every command.
pub(crate) fn serve(
    app: &App,
    conn: HttpConn<Stream>,
    request: Request,
    peer: SocketAddr,
    identity: Option<String>,
) -> Boxed<'_, ()> {
    let upgrade: Boxed<'_, _> = Box::pin(handshake(app, conn, request));
    Box::pin(async move {
        let Some((socket, request)) = upgrade.await else {
            return;
        };
        let asker = AuthRequest::new(&request, peer);
        run(app, socket, asker, identity).await;
    })
}

/// A boxed future of this module: see [`serve`].
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The opening handshake; `None` if it failed (counted and logged).
async fn handshake(
    app: &App,
    conn: HttpConn<Stream>,
    request: Request,
) -> Option<(Socket, Request)> {
    let config = AcceptConfig {
        connection: Config::default()
            .max_message_size(app.config.ws_max_message)
            .max_frame_size(app.config.ws_max_message)
            .keepalive(app.config.ws_keepalive),
        deflate: app.config.ws_deflate.clone(),
        // The session has the request already; a second copy per socket is waste.
        keep_request: false,
        ..AcceptConfig::default()
    };
    // The read buffer goes with this future, once its leftover bytes are
    // copied: kept, it would hold its 4 KiB as long as the socket lives.
    let HttpConn { io, buf, .. } = conn;
    match ws::accept_request(io, &request, &buf, &config).await {
        Ok(socket) => Some((socket, request)),
        Err(error) => {
            tracing::debug!(%error, "WebSocket handshake failed");
            app.metrics.handshake_failed();
            if let ws::Error::Handshake(refused) = &error {
                app.metrics.traffic.response(refused.status());
            }
            None
        }
    }
}

/// Serves an open socket until it closes. (An `async move` block, not an
/// `async fn`: an async fn keeps its arguments twice, and the socket is
/// the biggest thing in it.)
// An async fn would keep its arguments twice (see above).
#[allow(clippy::manual_async_fn)]
fn run<'a>(
    app: &'a App,
    mut socket: Socket,
    asker: AuthRequest<'a>,
    identity: Option<String>,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        tracing::debug!(user = identity.as_deref(), "WebSocket opened");
        app.metrics.traffic.response(101);
        let _open = app.metrics.open(Transport::WebSocket);
        socket.set_write_timeout(Some(app.config.write_timeout));
        let mut session = Session {
            app,
            asker,
            identity: identity.clone(),
            sender: app.hub.new_sender_id(),
            rooms: Rooms::default(),
        };
        if let Some(user) = &identity {
            let room = format!("user:{user}");
            // Boxed: inline, its state would size the session for as long
            // as it lives.
            let reply = Box::pin(session.join(&room, Since::Live, None)).await;
            let reply = reply.unwrap_or_else(|reason| error(&reason, None));
            let _ = socket.feed(Message::text(reply));
        }
        let mut shutdown = app.shutdown.clone();
        // Made once: a new one per turn of the loop would register anew
        // at every delivery.
        let shutting_down = shutdown.changed();
        tokio::pin!(shutting_down);
        // A socket in no room is closed after ws_idle_timeout without a command.
        let idle_for = app.config.ws_idle_timeout;
        let idle = tokio::time::sleep(idle_for);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Ok(Some(Message::Text(text))) => {
                        let reply = Box::pin(session.command(text.as_str())).await;
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_for);
                        if !reply.is_empty() && socket.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(Message::Binary(_))) => {
                        let _ = socket.send(Message::text(error("commands are JSON text messages", None))).await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
                delivery = poll_fn(|cx| session.rooms.poll_delivery(cx)) => {
                    if !deliver(app, &mut socket, &mut session.rooms, delivery).await {
                        break;
                    }
                }
                _ = &mut shutting_down => {
                    close(&mut socket, CloseCode::GOING_AWAY, "server shutting down").await;
                    break;
                }
                () = &mut idle, if session.rooms.is_empty() => {
                    close(&mut socket, CloseCode::POLICY_VIOLATION, "idle: joined no room").await;
                    break;
                }
            }
        }
        // Dropping the rooms ends their subscriptions and their members' presence.
        session.rooms.clear();
    }
}

/// Writes `first` and whatever else the rooms have queued, in one write
/// (up to a batch); false when the socket is done.
async fn deliver(app: &App, socket: &mut Socket, rooms: &mut Rooms, first: Delivery) -> bool {
    let mut next = Some(first);
    let mut messages = 0;
    while let Some(delivery) = next.take() {
        match delivery {
            Delivery::Message(message) => {
                if feed_message(app, socket, &message).is_err() {
                    return false;
                }
                messages += 1;
            }
            Delivery::Notice(text) => {
                if socket.feed(Message::text(text)).is_err() {
                    return false;
                }
            }
            Delivery::Rejoin(reason) => {
                // Boxed: seldom, and inline it would double this future.
                Box::pin(close(socket, CloseCode(1013), &reason)).await;
                return false;
            }
        }
        if messages >= BATCH_MESSAGES || socket.connection().buffered_output() >= BATCH_BYTES {
            break;
        }
        next = rooms.try_delivery();
    }
    app.metrics.delivered(Transport::WebSocket, messages);
    socket.flush().await.is_ok()
}

/// Queues one message, encoded (and compressed, where sockets share the
/// server's deflate parameters) once for every socket.
fn feed_message(app: &App, socket: &mut Socket, message: &HubMessage) -> Result<(), ws::Error> {
    let json = message.encoded(FormatKey::WS_TEXT, encode_delivery);
    // Encoded from a String: already UTF-8, no per-socket re-validation.
    let text = |json| Message::Text(Utf8Bytes::from_validated(json));
    match app.shared_compression {
        Some(key)
            if key.compresses(json.len()) && socket.connection().compression_key() == Some(key) =>
        {
            let compressed =
                message.encoded(FormatKey::WS_DEFLATE, |_| Bytes::from(key.compress(&json)));
            socket.feed_precompressed(text(json), key, compressed)
        }
        // Moved, not cloned: each clone is an atomic add and subtract on
        // a count that every socket of the room shares.
        _ => socket.feed(text(json)),
    }
}

/// Sends a close frame and waits (briefly) for the client's reply.
async fn close(socket: &mut Socket, code: CloseCode, reason: &str) {
    let reason = truncate_reason(reason);
    if socket.close(code, reason).await.is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Ok(Some(_)) = socket.recv().await {}
        })
        .await;
    }
}

impl Session<'_> {
    /// Runs one command; returns the reply, with the command's `ref`.
    async fn command(&mut self, text: &str) -> String {
        let tagged = decode_tagged(text.as_bytes());
        let reference = tagged.reference.as_deref();
        let command = match tagged.command {
            Ok(command) => command,
            Err(e) => return error(&e.to_string(), reference),
        };
        let outcome = match command {
            Command::Join { channel, since } => {
                let since = since.map_or(Since::Live, Since::After);
                self.join(&channel, since, reference).await
            }
            Command::Leave { channel } => match self.rooms.remove(channel.as_ref()) {
                Some(_) => Ok(Reply::Left { channel: &channel }.to_string_with(reference)),
                None => Err("not joined".to_owned()),
            },
            Command::Publish {
                channel,
                data,
                except_self,
            } => self.publish(&channel, data, except_self, reference).await,
            Command::Send { user, data } => {
                let room = format!("user:{user}");
                self.publish(&room, data, false, reference).await
            }
            Command::Presence { channel } => self.presence(&channel, reference).await,
            Command::Ping => Ok(Reply::Pong.to_string_with(reference)),
        };
        outcome.unwrap_or_else(|reason| error(&reason, reference))
    }

    /// The members of `channel`, for a socket that may read it.
    async fn presence(&self, channel: &str, reference: Option<&str>) -> Result<String, String> {
        self.permit(Action::Subscribe(channel)).await?;
        let snapshot = self.app.hub.presence().snapshot(channel);
        Ok(Reply::Presence {
            channel,
            members: &snapshot.members,
        }
        .to_string_with(reference))
    }

    /// Whether this socket may do `action` on its channel: a valid name,
    /// the hook's verdict, and private rooms only for their owner. `Err`
    /// holds the reason.
    async fn permit(&self, action: Action<'_>) -> Result<(), String> {
        let channel = match action {
            Action::Subscribe(c) | Action::Publish(c) => c,
            Action::Connect => return Ok(()),
        };
        if !super::valid_channel(channel) {
            return Err("invalid channel name".to_owned());
        }
        if let Err(denied) = self.app.auth.authorize(self.asker, action).await {
            return Err(denied.reason);
        }
        if matches!(action, Action::Subscribe(_))
            && check_private(channel, self.identity.as_deref()).is_err()
        {
            return Err(format!("{channel} is private"));
        }
        Ok(())
    }

    async fn join(
        &mut self,
        channel: &str,
        since: Since,
        reference: Option<&str>,
    ) -> Result<String, String> {
        self.permit(Action::Subscribe(channel)).await?;
        if self.rooms.contains(channel) {
            return Err("already joined".to_owned());
        }
        let limit = self.app.config.ws_max_rooms;
        if self.rooms.len() >= limit {
            return Err(format!("too many rooms: at most {limit} per socket"));
        }
        self.app
            .broker
            .attach(channel)
            .await
            .map_err(|e| e.to_string())?;
        let subscription = self
            .app
            .hub
            .subscribe_with(
                channel,
                SubscribeOptions {
                    since,
                    skip_sender: Some(self.sender),
                },
            )
            .map_err(|e| e.to_string())?;
        let resume = subscription.resume();
        let position = subscription.position();
        let presence = self.app.hub.presence();
        // Watching before holding: the socket hears of its own arrival.
        let watch = presence.watch(channel);
        let present = self
            .identity
            .as_deref()
            .and_then(|me| presence.hold(channel, me));
        let room = Room {
            name: channel.into(),
            subscription,
            ended: false,
            changes: watch.map(next_change),
            presence: presence.clone(),
            _present: present,
        };
        self.rooms.insert(room);
        Ok(Reply::Joined {
            channel,
            resume: ResumeFields(&resume),
            since: JsonId(position),
        }
        .to_string_with(reference))
    }

    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        except_self: bool,
        reference: Option<&str>,
    ) -> Result<String, String> {
        self.permit(Action::Publish(channel)).await?;
        let sender = except_self.then_some(self.sender);
        match self.app.broker.publish(channel, data, sender).await {
            Ok(id) => Ok(Reply::Published {
                channel,
                id: JsonId(id),
            }
            .to_string_with(reference)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The next presence change, or never without a watcher.
pub(crate) async fn recv_change(
    watch: &mut Option<broadcast::Receiver<PresenceChange>>,
) -> Result<PresenceChange, broadcast::error::RecvError> {
    match watch {
        Some(watch) => watch.recv().await,
        None => std::future::pending().await,
    }
}

fn error(reason: &str, reference: Option<&str>) -> String {
    Reply::Error { reason }.to_string_with(reference)
}
