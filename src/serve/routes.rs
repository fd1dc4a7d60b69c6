//! The request loop of one connection and the route table.

use std::sync::Arc;
use tokio::net::TcpStream;

use super::auth::Action;
use super::http_conn::{wants_keep_alive, HttpConn, Incoming, Read};
use super::json::{self, JsonId};
use super::metrics::Transport;
use super::params::valid_channel;
use super::response::Response;
use super::{long_poll, poll, sse, websocket, App};
use crate::hub::HubError;

/// What became of the connection after a request. Moved once per request,
/// so its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    /// Ready for the next request.
    KeepAlive(HttpConn<TcpStream>),
    /// Closed, or handed to a streaming transport that has finished with it.
    Done,
}

/// Serves requests on one connection until it closes.
pub(crate) async fn serve_connection(app: Arc<App>, mut conn: HttpConn<TcpStream>) {
    let mut shutdown = app.shutdown.clone();
    loop {
        let read = tokio::select! {
            read = conn.read_request(&app.config, &app.shed) => read,
            _ = shutdown.changed() => return,
        };
        let incoming = match read {
            Read::Closed => return,
            Read::Reject(response) => {
                conn.reject(&response).await;
                return;
            }
            Read::Shed(response) => {
                if let Some(response) = response {
                    let _ = conn.send(&response, false, false).await;
                }
                return;
            }
            Read::Request(incoming) => incoming,
        };
        let keep_alive = wants_keep_alive(&incoming.request) && !*shutdown.borrow();
        match handle(&app, conn, incoming, keep_alive).await {
            Next::KeepAlive(next) if keep_alive => conn = next,
            _ => return,
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
        _ => {
            let Some(rest) = path.strip_prefix("/channels/") else {
                return Route::NotFound;
            };
            let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_channel(name) {
                return Route::BadChannel;
            }
            match tail {
                "" => (Route::Publish(name), "POST"),
                "poll" => (Route::Poll(name), "GET"),
                "long-poll" => (Route::LongPoll(name), "GET"),
                "events" => (Route::Events(name), "GET"),
                _ => return Route::NotFound,
            }
        }
    };
    let method_ok =
        method == allow || (allow == "GET" && method == "HEAD" && route != Route::WebSocket);
    if method_ok {
        route
    } else {
        Route::WrongMethod(allow)
    }
}

async fn handle(
    app: &Arc<App>,
    mut conn: HttpConn<TcpStream>,
    incoming: Incoming,
    keep_alive: bool,
) -> Next {
    let path = incoming.request.path().to_owned();
    let route = resolve(&incoming.request.method, &path);
    let head_only = incoming.request.method == "HEAD";
    let response = match route {
        Route::Demo => Response::new(200, "text/html; charset=utf-8", DEMO_PAGE),
        Route::Health => Response::new(200, "text/plain; charset=utf-8", "ok\n"),
        Route::Metrics => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            app.metrics.render(&app.hub),
        ),
        Route::BadChannel => {
            Response::error(400, "invalid channel name: 1-64 of A-Z a-z 0-9 - _ . :")
        }
        Route::NotFound => Response::error(404, "no such route"),
        Route::WrongMethod(allow) => {
            Response::error(405, "method not allowed").header("Allow", allow)
        }
        Route::Publish(channel) => publish(app, &incoming, channel),
        Route::Poll(channel) => match authorize(app, &incoming, channel) {
            Ok(_) => {
                let _open = app.metrics.open(Transport::Poll);
                poll::answer(app, &incoming.request, channel)
            }
            Err(denied) => denied,
        },
        Route::LongPoll(channel) => match authorize(app, &incoming, channel) {
            Ok(_) => {
                let _open = app.metrics.open(Transport::LongPoll);
                let answer = long_poll::answer(app, &incoming.request, channel);
                // A client that leaves frees its slot at once, not at the
                // end of its timeout.
                tokio::select! {
                    response = answer => response,
                    _ = conn.closed(app.config.max_head_bytes) => return Next::Done,
                }
            }
            Err(denied) => denied,
        },
        Route::Events(channel) if head_only => match authorize(app, &incoming, channel) {
            Ok(_) => sse::head_response(),
            Err(denied) => denied,
        },
        Route::Events(channel) => match authorize(app, &incoming, channel) {
            Ok(_) => {
                let _open = app.metrics.open(Transport::Sse);
                sse::stream(app, conn, &incoming.request, channel).await;
                return Next::Done;
            }
            Err(denied) => denied,
        },
        Route::WebSocket => match app.auth.authorize(&incoming.request, Action::Connect) {
            Ok(identity) => {
                let _open = app.metrics.open(Transport::WebSocket);
                websocket::serve(app, conn, &incoming.request, identity).await;
                return Next::Done;
            }
            Err(denied) => Response::error(denied.status, &denied.reason),
        },
    };
    let keep_alive = keep_alive && !response.streamed;
    match conn.send(&response, keep_alive, head_only).await {
        Ok(()) if keep_alive => Next::KeepAlive(conn),
        _ => Next::Done,
    }
}

/// Checks that the request may read `channel`: the hook's verdict, and
/// private rooms (`user:NAME`) only for NAME.
fn authorize(app: &App, incoming: &Incoming, channel: &str) -> Result<Option<String>, Response> {
    let identity = app
        .auth
        .authorize(&incoming.request, Action::Subscribe(channel))
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

fn publish(app: &App, incoming: &Incoming, channel: &str) -> Response {
    if let Err(denied) = app
        .auth
        .authorize(&incoming.request, Action::Publish(channel))
    {
        return Response::error(denied.status, &denied.reason);
    }
    match app.hub.publish(channel, incoming.body.clone(), None) {
        Ok(message) => {
            #[derive(serde::Serialize)]
            struct Published {
                id: JsonId,
            }
            let mut body = json::to_vec(&Published {
                id: JsonId(message.id),
            });
            body.push(b'\n');
            Response::json(202, body)
        }
        Err(e) => hub_error(&e),
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
        assert_eq!(resolve("GET", "/channels/a"), Route::WrongMethod("POST"));
        assert_eq!(resolve("POST", "/ws"), Route::WrongMethod("GET"));
        assert_eq!(resolve("GET", "/channels/a/other"), Route::NotFound);
        assert_eq!(resolve("GET", "/nothing"), Route::NotFound);
        assert_eq!(resolve("HEAD", "/healthz"), Route::Health);
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
