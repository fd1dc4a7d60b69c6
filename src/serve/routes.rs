//! The request loop of one connection and the route table.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use super::admin::{self, WebhookRoute};
use super::auth::{bearer_credential, secret_eq, Action, AuthRequest};
use super::cors::is_preflight;
use super::http_conn::{wants_keep_alive, HttpConn, Incoming, Read};
use super::json::{self, JsonId};
use super::metrics::{RouteLabel, Transport};
use super::params::valid_channel;
use super::response::Response;
use super::Stream;
use super::{long_poll, poll, sse, websocket, App, HttpRequest, HttpResponse};
use crate::http::Request;
use crate::hub::{HubError, PublishError};
use bytes::Bytes;

/// What became of the connection after a request. Moved once per request,
/// so its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    /// Ready for the next request.
    KeepAlive(HttpConn<Stream>),
    /// Closed, or answered as the last request.
    Done,
    /// Accepted for a long-lived transport, served once this loop is gone.
    Stream(Handoff),
}

/// A connection that leaves the request loop for a WebSocket or an event
/// stream. The loop's future (the largest of any request's) is dropped
/// before the stream is served, so a subscriber's memory is the stream's
/// own: the task awaits the two one after the other, each boxed.
pub(crate) struct Handoff {
    conn: HttpConn<Stream>,
    request: Request,
    peer: SocketAddr,
    identity: Option<String>,
    kind: Handed,
}

enum Handed {
    WebSocket,
    Sse { channel: String },
}

impl Handoff {
    /// Serves the stream until it ends; the future is the stream's box.
    pub(crate) fn serve(self, app: &App) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let Handoff {
            conn,
            request,
            peer,
            identity,
            kind,
        } = self;
        match kind {
            Handed::WebSocket => websocket::serve(app, conn, request, peer, identity),
            Handed::Sse { channel } => sse::serve(app, conn, request, channel, identity),
        }
    }
}

/// Serves requests on one connection until it closes, or until one of
/// them hands the connection to a stream.
///
/// (This and `handle` are `async move` blocks, not `async fn`s: an async
/// fn keeps its arguments twice, and the connection is the largest.)
// An async fn would keep its arguments twice (see above).
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve_connection(
    app: &Arc<App>,
    mut conn: HttpConn<Stream>,
    peer: SocketAddr,
) -> impl Future<Output = Option<Handoff>> + Send + '_ {
    async move {
        let mut shutdown = app.shutdown.clone();
        loop {
            let read = tokio::select! {
                read = conn.read_request(&app.config, &app.shed) => read,
                _ = shutdown.changed() => return None,
            };
            let incoming = match read {
                Read::Closed => return None,
                Read::Reject(response) => {
                    tracing::debug!(status = response.status, "bad request rejected");
                    // Boxed: inline, its state would size every connection.
                    Box::pin(conn.reject(&response)).await;
                    return None;
                }
                Read::Shed(response) => {
                    tracing::debug!("connection shed to make room for a new client");
                    if let Some(response) = response {
                        let _ = conn.send(&response, false, false).await;
                    }
                    return None;
                }
                Read::Request(incoming) => incoming,
            };
            let keep_alive = wants_keep_alive(&incoming.request) && !*shutdown.borrow();
            match handle(app, conn, incoming, peer, keep_alive).await {
                Next::KeepAlive(next) if keep_alive => conn = next,
                Next::Stream(handoff) => return Some(handoff),
                _ => return None,
            }
        }
    }
}

/// A request's place in the route table.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Demo,
    Health,
    Metrics,
    WebSocket,
    Publish(&'a str),
    Poll(&'a str),
    LongPoll(&'a str),
    Events(&'a str),
    /// `GET /channels/NAME/presence`: who is there.
    Presence(&'a str),
    /// `DELETE /channels/NAME/presence`: a polling client leaving.
    PresenceLeave(&'a str),
    /// `GET /rtwire.js` and `/rtwire.d.ts`: the browser client.
    Client(ClientFile),
    /// `GET /channels/NAME`: the WebSub topic.
    Topic(&'a str),
    /// `/webhooks…` (methods checked by the admin routes).
    Webhooks(WebhookRoute<'a>),
    /// `POST /websub`.
    WebSub,
    BadChannel,
    NotFound,
    WrongMethod(&'static str),
}

fn resolve<'a>(method: &str, path: &'a str) -> Route<'a> {
    let (route, allow) = match path {
        "/" => (Route::Demo, "GET"),
        "/healthz" => (Route::Health, "GET"),
        "/metrics" => (Route::Metrics, "GET"),
        "/ws" => (Route::WebSocket, "GET"),
        "/websub" => (Route::WebSub, "POST"),
        "/rtwire.js" => (Route::Client(ClientFile::Module), "GET"),
        "/rtwire.d.ts" => (Route::Client(ClientFile::Types), "GET"),
        _ if path.starts_with("/webhooks") => {
            return match WebhookRoute::resolve(path) {
                Some((route, _)) => Route::Webhooks(route),
                None => Route::NotFound,
            };
        }
        _ => {
            let Some(rest) = path.strip_prefix("/channels/") else {
                return Route::NotFound;
            };
            let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_channel(name) {
                return Route::BadChannel;
            }
            match tail {
                "" if method == "POST" => (Route::Publish(name), "POST"),
                "" => (Route::Topic(name), "GET, HEAD, POST"),
                "poll" => (Route::Poll(name), "GET"),
                "long-poll" => (Route::LongPoll(name), "GET"),
                "events" => (Route::Events(name), "GET"),
                "presence" if method == "DELETE" => (Route::PresenceLeave(name), "DELETE"),
                "presence" => (Route::Presence(name), "GET, HEAD, DELETE"),
                _ => return Route::NotFound,
            }
        }
    };
    let method_ok = method == allow
        || (allow == "GET" && method == "HEAD" && route != Route::WebSocket)
        || (matches!(route, Route::Topic(_) | Route::Presence(_))
            && (method == "GET" || method == "HEAD"));
    if method_ok {
        route
    } else {
        Route::WrongMethod(allow)
    }
}

// An async fn would keep its arguments twice (see above).
#[allow(clippy::manual_async_fn)]
fn handle<'a>(
    app: &'a Arc<App>,
    mut conn: HttpConn<Stream>,
    incoming: Incoming,
    peer: SocketAddr,
    keep_alive: bool,
) -> impl Future<Output = Next> + Send + 'a {
    async move {
        let asker = AuthRequest::new(&incoming.request, peer);
        let path = incoming.request.path().to_owned();
        // Kept for the debug event: a fallback handler takes the request.
        let method = match tracing::enabled!(tracing::Level::DEBUG) {
            true => incoming.request.method.clone(),
            false => String::new(),
        };
        let route = match resolve(&incoming.request.method, &path) {
            Route::Demo if !app.config.demo_page => Route::NotFound,
            Route::Webhooks(_) | Route::WebSub if app.push.is_none() => Route::NotFound,
            route => route,
        };
        let head_only = incoming.request.method == "HEAD";
        let cors = app.config.cors.as_ref().filter(|_| channel_route(&path));
        if let Some(cors) = cors.filter(|_| is_preflight(&incoming.request)) {
            app.metrics.request(RouteLabel::Preflight);
            let response = cors.preflight(&incoming.request);
            log_request(&method, &path, response.status);
            return match conn.send(&response, keep_alive, false).await {
                Ok(()) if keep_alive => Next::KeepAlive(conn),
                _ => Next::Done,
            };
        }
        app.metrics.request(route_label(&route, app));
        let cors_headers = cors.map(|cors| cors.headers(&incoming.request));
        let mut response = match route {
            Route::Demo => Response::new(200, "text/html; charset=utf-8", DEMO_PAGE),
            Route::Health => Response::new(200, "text/plain; charset=utf-8", "ok\n"),
            Route::Client(file) => file.response(&incoming.request),
            Route::Metrics => metrics(app, &incoming.request),
            Route::BadChannel => {
                Response::error(400, "invalid channel name: 1-64 of A-Z a-z 0-9 - _ . :")
            }
            Route::NotFound => match &app.fallback {
                None => Response::error(404, "no such route"),
                Some(handler) => {
                    let request = HttpRequest::new(incoming.request, incoming.body, peer);
                    let answer =
                        tokio::time::timeout(app.config.handler_timeout, handler.call(request));
                    // A client that leaves drops the handler's future at once.
                    tokio::select! {
                        answer = answer => handler_response(answer),
                        _ = conn.closed(app.config.max_head_bytes) => return Next::Done,
                    }
                }
            },
            Route::WrongMethod(allow) => {
                Response::error(405, "method not allowed").header("Allow", allow)
            }
            // Boxed, as the admin routes: each would otherwise size every
            // connection's task (held long polls included) for itself.
            Route::Publish(channel) => Box::pin(publish(app, asker, &incoming.body, channel)).await,
            Route::Topic(channel) => admin::topic(app, asker, channel).await,
            Route::Presence(channel) => match authorize(app, asker, channel).await {
                Ok(_) => presence_list(app, &incoming.request, channel),
                Err(denied) => denied,
            },
            Route::PresenceLeave(channel) => match authorize(app, asker, channel).await {
                Ok(identity) => presence_leave(app, channel, identity.as_deref()),
                Err(denied) => denied,
            },
            Route::Webhooks(route) => match &app.push {
                Some(push) => {
                    Box::pin(admin::webhooks(
                        push,
                        &incoming.request,
                        &incoming.body,
                        route,
                    ))
                    .await
                }
                None => Response::error(404, "no such route"),
            },
            Route::WebSub => match &app.push {
                Some(push) => {
                    Box::pin(admin::websub(
                        app,
                        push,
                        asker,
                        &incoming.request,
                        &incoming.body,
                    ))
                    .await
                }
                None => Response::error(404, "no such route"),
            },
            Route::Poll(channel) => match authorize(app, asker, channel).await {
                Ok(identity) => {
                    let _open = app.metrics.open(Transport::Poll);
                    poll::answer(app, &incoming.request, channel, identity.as_deref()).await
                }
                Err(denied) => denied,
            },
            Route::LongPoll(channel) => match authorize(app, asker, channel).await {
                Ok(identity) => {
                    let _open = app.metrics.open(Transport::LongPoll);
                    conn.release_buffer();
                    let request = &incoming.request;
                    // Boxed: inline, its state would size every connection's
                    // task, whatever it serves.
                    let answer = Box::pin(long_poll::answer(
                        app,
                        request,
                        channel,
                        identity.as_deref(),
                    ));
                    // A client that leaves frees its slot at once, not at the
                    // end of its timeout.
                    tokio::select! {
                        response = answer => response,
                        _ = conn.closed(app.config.max_head_bytes) => {
                            tracing::debug!(path = %path, "long poll: the client left");
                            return Next::Done;
                        }
                    }
                }
                Err(denied) => denied,
            },
            Route::Events(channel) if head_only => match authorize(app, asker, channel).await {
                Ok(_) => sse::head_response(),
                Err(denied) => denied,
            },
            Route::Events(channel) => match authorize(app, asker, channel).await {
                Ok(identity) => {
                    log_request(&method, &path, 200);
                    let kind = Handed::Sse {
                        channel: channel.to_owned(),
                    };
                    return Next::Stream(Handoff {
                        conn,
                        request: incoming.request,
                        peer,
                        identity,
                        kind,
                    });
                }
                Err(denied) => denied,
            },
            Route::WebSocket => match app.auth.authorize(asker, Action::Connect).await {
                Ok(identity) => {
                    return Next::Stream(Handoff {
                        conn,
                        request: incoming.request,
                        peer,
                        identity,
                        kind: Handed::WebSocket,
                    });
                }
                Err(denied) => Response::error(denied.status, &denied.reason),
            },
        };
        for (name, value) in cors_headers.into_iter().flatten() {
            response = response.header(name, value);
        }
        log_request(&method, &path, response.status);
        let keep_alive = keep_alive && !response.streamed;
        match conn.send(&response, keep_alive, head_only).await {
            Ok(()) if keep_alive => Next::KeepAlive(conn),
            _ => Next::Done,
        }
    }
}

/// The route's name in `rtwire_requests_total`.
fn route_label(route: &Route<'_>, app: &App) -> RouteLabel {
    match route {
        Route::Demo => RouteLabel::Demo,
        Route::Health => RouteLabel::Health,
        Route::Metrics => RouteLabel::Metrics,
        Route::WebSocket => RouteLabel::WebSocket,
        Route::Publish(_) => RouteLabel::Publish,
        Route::Poll(_) => RouteLabel::Poll,
        Route::LongPoll(_) => RouteLabel::LongPoll,
        Route::Events(_) => RouteLabel::Events,
        Route::Topic(_) => RouteLabel::Topic,
        Route::Presence(_) | Route::PresenceLeave(_) => RouteLabel::Presence,
        Route::Client(_) => RouteLabel::Client,
        Route::Webhooks(_) => RouteLabel::Webhooks,
        Route::WebSub => RouteLabel::WebSub,
        Route::BadChannel => RouteLabel::BadChannel,
        Route::NotFound if app.fallback.is_some() => RouteLabel::Fallback,
        Route::NotFound => RouteLabel::NotFound,
        Route::WrongMethod(_) => RouteLabel::WrongMethod,
    }
}

/// `GET /metrics`, behind `metrics_token` when one is set.
fn metrics(app: &App, request: &Request) -> Response {
    if let Some(token) = &app.config.metrics_token {
        let presented = bearer_credential(request);
        if !presented.is_some_and(|p| secret_eq(p, token)) {
            return Response::error(
                401,
                "metrics need the metrics token (Authorization: Bearer)",
            )
            .header("WWW-Authenticate", "Bearer");
        }
    }
    let push = app.push.as_ref().map(|push| push.stats());
    let text = app.metrics.render(&app.hub, app.broker.stats(), push);
    Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text)
}

/// Whether `path` is one of the HTTP transports' routes, which CORS covers.
fn channel_route(path: &str) -> bool {
    matches!(
        resolve("GET", path),
        Route::Poll(_)
            | Route::LongPoll(_)
            | Route::Events(_)
            | Route::Topic(_)
            | Route::Presence(_)
    ) || matches!(resolve("POST", path), Route::Publish(_))
}

/// `GET /channels/NAME/presence`: `{"channel":"room","members":["alice"]}`,
/// with an `ETag` that changes whenever someone comes or goes, so a
/// client may ask every few seconds and mostly get 304.
fn presence_list(app: &App, request: &Request, channel: &str) -> Response {
    let snapshot = app.hub.presence().snapshot(channel);
    let etag = format!("\"p{}\"", snapshot.revision);
    if request.headers.get("if-none-match") == Some(etag.as_str()) {
        return Response::new(304, "application/json", "").header("ETag", etag);
    }
    #[derive(serde::Serialize)]
    struct List<'a> {
        channel: &'a str,
        members: &'a [String],
    }
    let mut body = json::to_vec(&List {
        channel,
        members: &snapshot.members,
    });
    body.push(b'\n');
    Response::json(200, body)
        .header("ETag", etag)
        .header("Cache-Control", "no-cache")
}

/// `DELETE /channels/NAME/presence`: a polling client says it is leaving,
/// rather than waiting for its lease to lapse. The identity comes from
/// the request's user token; it stays present while it holds a stream or
/// a socket in the channel.
fn presence_leave(app: &App, channel: &str, identity: Option<&str>) -> Response {
    match identity {
        Some(me) => {
            app.hub.presence().release(channel, me);
            Response::new(204, "text/plain; charset=utf-8", "")
        }
        None => Response::error(400, "leaving presence needs a user token"),
    }
}

/// The browser client, served from the binary (`client/` in the
/// repository).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientFile {
    /// `/rtwire.js`, the ES module.
    Module,
    /// `/rtwire.d.ts`, its types.
    Types,
}

impl ClientFile {
    fn response(self, request: &Request) -> Response {
        let (content_type, text) = match self {
            ClientFile::Module => ("text/javascript; charset=utf-8", CLIENT_MODULE),
            ClientFile::Types => ("application/typescript; charset=utf-8", CLIENT_TYPES),
        };
        // The version is the crate's: a new binary may hold a new client.
        let etag = concat!("\"rtwire-", env!("CARGO_PKG_VERSION"), "\"");
        if request.headers.get("if-none-match") == Some(etag) {
            return Response::new(304, content_type, "").header("ETag", etag);
        }
        Response::new(200, content_type, text)
            .header("ETag", etag)
            .header("Cache-Control", "no-cache")
    }
}

/// The client module and its types, served from the binary.
const CLIENT_MODULE: &str = include_str!("../../client/rtwire.js");
const CLIENT_TYPES: &str = include_str!("../../client/rtwire.d.ts");

/// What the client gets for a handler's answer: the response, a 500 if
/// it cannot be sent as it is, a 503 if it came too late.
fn handler_response(answer: Result<HttpResponse, tokio::time::error::Elapsed>) -> Response {
    match answer.map(HttpResponse::into_response) {
        Ok(Ok(response)) => response,
        Ok(Err(invalid)) => Response::error(500, &format!("handler response not sent: {invalid}")),
        Err(_) => Response::error(503, "handler did not answer in time").header("Retry-After", "1"),
    }
}

/// A request answered (or an event stream begun). The query is left out:
/// it may hold a token.
fn log_request(method: &str, path: &str, status: u16) {
    tracing::debug!(method, path, status, "request");
}

/// Checks that the request may read `channel`: the hook's verdict, and
/// private rooms (`user:NAME`) only for NAME.
pub(crate) async fn authorize(
    app: &App,
    asker: AuthRequest<'_>,
    channel: &str,
) -> Result<Option<String>, Response> {
    let identity = app
        .auth
        .authorize(asker, Action::Subscribe(channel))
        .await
        .map_err(|d| Response::error(d.status, &d.reason))?;
    check_private(channel, identity.as_deref())?;
    Ok(identity)
}

/// Only NAME may subscribe to `user:NAME`.
pub(crate) fn check_private(channel: &str, identity: Option<&str>) -> Result<(), Response> {
    match channel.strip_prefix("user:") {
        Some(owner) if identity != Some(owner) => {
            Err(Response::error(403, &format!("{channel} is private")))
        }
        _ => Ok(()),
    }
}

async fn publish(app: &App, asker: AuthRequest<'_>, body: &Bytes, channel: &str) -> Response {
    let verdict = app.auth.authorize(asker, Action::Publish(channel)).await;
    if let Err(denied) = verdict {
        return Response::error(denied.status, &denied.reason);
    }
    match app.broker.publish(channel, body.clone(), None).await {
        Ok(id) => {
            #[derive(serde::Serialize)]
            struct Published {
                id: JsonId,
            }
            let mut body = json::to_vec(&Published { id: JsonId(id) });
            body.push(b'\n');
            Response::json(202, body)
        }
        Err(e) => broker_error(&e),
    }
}

/// The answer to a publish or attach the broker refused: the hub's
/// refusal, or 503 when the broker cannot be reached (nothing was
/// acknowledged).
pub(crate) fn broker_error(error: &PublishError) -> Response {
    match error {
        PublishError::Hub(e) => hub_error(e),
        PublishError::Unavailable(_) => {
            Response::error(503, &error.to_string()).header("Retry-After", "1")
        }
    }
}

/// The answer to a publish or subscribe the hub refused: the client's
/// fault (413) or a state that may pass (503, retry later).
pub(crate) fn hub_error(error: &HubError) -> Response {
    match error {
        HubError::MessageTooLarge { .. } => Response::error(413, &error.to_string()),
        HubError::TooManyChannels { .. } => {
            Response::error(503, &error.to_string()).header("Retry-After", "10")
        }
        _ => Response::error(503, &error.to_string()),
    }
}

/// The demo page, served from the binary.
const DEMO_PAGE: &str = include_str!("demo.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        assert_eq!(resolve("GET", "/"), Route::Demo);
        assert_eq!(resolve("POST", "/channels/a"), Route::Publish("a"));
        assert_eq!(resolve("GET", "/channels/a/poll"), Route::Poll("a"));
        assert_eq!(
            resolve("GET", "/channels/a/long-poll"),
            Route::LongPoll("a")
        );
        assert_eq!(resolve("GET", "/channels/a/events"), Route::Events("a"));
        assert_eq!(resolve("GET", "/channels/a b/events"), Route::BadChannel);
        assert_eq!(resolve("GET", "/channels/a"), Route::Topic("a"));
        assert_eq!(resolve("HEAD", "/channels/a"), Route::Topic("a"));
        assert_eq!(
            resolve("PUT", "/channels/a"),
            Route::WrongMethod("GET, HEAD, POST")
        );
        assert_eq!(resolve("POST", "/websub"), Route::WebSub);
        assert_eq!(resolve("GET", "/websub"), Route::WrongMethod("POST"));
        assert_eq!(
            resolve("DELETE", "/webhooks/wh_1"),
            Route::Webhooks(WebhookRoute::One("wh_1"))
        );
        assert_eq!(resolve("GET", "/webhooks/a/b"), Route::NotFound);
        assert_eq!(resolve("POST", "/ws"), Route::WrongMethod("GET"));
        assert_eq!(resolve("GET", "/channels/a/other"), Route::NotFound);
        assert_eq!(resolve("GET", "/nothing"), Route::NotFound);
        assert_eq!(resolve("HEAD", "/healthz"), Route::Health);
        assert_eq!(resolve("GET", "/channels/a/presence"), Route::Presence("a"));
        assert_eq!(
            resolve("DELETE", "/channels/a/presence"),
            Route::PresenceLeave("a")
        );
        assert_eq!(
            resolve("POST", "/channels/a/presence"),
            Route::WrongMethod("GET, HEAD, DELETE")
        );
        assert_eq!(
            resolve("GET", "/rtwire.js"),
            Route::Client(ClientFile::Module)
        );
    }

    #[test]
    fn private_rooms_belong_to_their_user() {
        assert!(check_private("user:alice", Some("alice")).is_ok());
        assert_eq!(
            check_private("user:alice", Some("bob")).unwrap_err().status,
            403
        );
        assert_eq!(check_private("user:alice", None).unwrap_err().status, 403);
        assert!(check_private("room", None).is_ok());
    }
}
