//! Push's routes: the webhook admin API (`/webhooks…`, behind the admin
//! token), the WebSub hub (`POST /websub`) and topics (`GET
//! /channels/NAME`). Thin: the push service does the work.

use super::auth::{bearer_credential, secret_eq, AuthRequest};
use super::json;
use super::response::Response;
use super::routes::{authorize, broker_error};
use super::App;
use crate::http::Request;
use crate::push::form::{Form, FormLimits};
use crate::push::webhook::{NewSecret, NewWebhook};
use crate::push::{content_type, websub, Push, PushError};
use bytes::Bytes;

/// The webhook admin routes, by path after `/webhooks`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WebhookRoute<'a> {
    /// `/webhooks`
    All,
    /// `/webhooks/{id}`
    One(&'a str),
    /// `/webhooks/{id}/deliveries`
    Deliveries(&'a str),
    /// `/webhooks/{id}/secret`: rotation.
    Secret(&'a str),
}

impl<'a> WebhookRoute<'a> {
    /// The route of `path`, if it is one; and the methods it allows.
    pub fn resolve(path: &'a str) -> Option<(WebhookRoute<'a>, &'static str)> {
        let rest = path.strip_prefix("/webhooks")?;
        if rest.is_empty() {
            return Some((WebhookRoute::All, "GET, POST"));
        }
        let rest = rest.strip_prefix('/')?;
        match rest.split_once('/') {
            None if !rest.is_empty() => Some((WebhookRoute::One(rest), "GET, DELETE")),
            Some((id, "deliveries")) if !id.is_empty() => {
                Some((WebhookRoute::Deliveries(id), "GET"))
            }
            Some((id, "secret")) if !id.is_empty() => Some((WebhookRoute::Secret(id), "POST")),
            _ => None,
        }
    }
}

fn json_error(status: u16, reason: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Error<'a> {
        error: &'a str,
    }
    let mut body = json::to_vec(&Error { error: reason });
    body.push(b'\n');
    Response::json(status, body)
}

fn json_ok(status: u16, value: &impl serde::Serialize) -> Response {
    let mut body = json::to_vec(value);
    body.push(b'\n');
    Response::json(status, body)
}

fn push_error(error: &PushError) -> Response {
    match error {
        PushError::Refused(_) => json_error(400, &error.to_string()),
        PushError::Full(_) | PushError::Unavailable(_) => {
            json_error(503, &error.to_string()).header("Retry-After", "5")
        }
    }
}

/// `/webhooks…`: the admin token first, then the route.
pub(crate) async fn webhooks(
    push: &Push,
    request: &Request,
    body: &Bytes,
    route: WebhookRoute<'_>,
) -> Response {
    let presented = bearer_credential(request);
    if !presented.is_some_and(|p| secret_eq(p, push.admin_token())) {
        return json_error(
            401,
            "the admin routes need the admin token (Authorization: Bearer)",
        )
        .header("WWW-Authenticate", "Bearer");
    }
    let method = request.method.as_str();
    match (method, route) {
        ("POST", WebhookRoute::All) => match NewWebhook::from_json(body) {
            Ok(new) => match push.create_webhook(new).await {
                Ok(view) => json_ok(201, &view),
                Err(e) => push_error(&e),
            },
            Err(e) => json_error(400, &e.to_string()),
        },
        ("GET" | "HEAD", WebhookRoute::All) => {
            #[derive(serde::Serialize)]
            struct All<T> {
                webhooks: T,
            }
            json_ok(
                200,
                &All {
                    webhooks: push.webhooks(),
                },
            )
        }
        ("GET" | "HEAD", WebhookRoute::One(id)) => match push.webhook(id) {
            Some(view) => json_ok(200, &view),
            None => json_error(404, "no such webhook"),
        },
        ("DELETE", WebhookRoute::One(id)) => match push.delete_webhook(id) {
            true => Response::new(204, "text/plain; charset=utf-8", ""),
            false => json_error(404, "no such webhook"),
        },
        ("POST", WebhookRoute::Secret(id)) => match NewSecret::from_json(body) {
            Ok(secret) => match push.rotate_secret(id, secret) {
                Some(secret) => {
                    #[derive(serde::Serialize)]
                    struct Rotated {
                        secret: String,
                    }
                    json_ok(200, &Rotated { secret })
                }
                None => json_error(404, "no such webhook"),
            },
            Err(e) => json_error(400, &e.to_string()),
        },
        ("GET" | "HEAD", WebhookRoute::Deliveries(id)) => match push.deliveries(id) {
            Some(deliveries) => {
                #[derive(serde::Serialize)]
                struct Log<T> {
                    deliveries: T,
                }
                json_ok(200, &Log { deliveries })
            }
            None => json_error(404, "no such webhook"),
        },
        _ => {
            let allow = WebhookRoute::resolve(request.path()).map_or("GET", |(_, a)| a);
            json_error(405, "method not allowed").header("Allow", allow)
        }
    }
}

/// `POST /websub`: a subscription request (§5.1). 202 once it is taken;
/// verification of intent follows in the background.
pub(crate) async fn websub(
    app: &App,
    push: &Push,
    asker: AuthRequest<'_>,
    request: &Request,
    body: &Bytes,
) -> Response {
    let media = request.headers.get("content-type").unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Response::error(
            415,
            "a subscription request is application/x-www-form-urlencoded",
        );
    }
    let form = match Form::parse(body, &FormLimits::default()) {
        Ok(form) => form,
        Err(e) => return Response::error(400, &e.to_string()),
    };
    let request = match websub::Request::from_form(&form, push.base()) {
        Ok(request) => request,
        Err(e) => return Response::error(400, &e.to_string()),
    };
    // The topic is read like any subscription: the auth hook's verdict,
    // and private rooms only for their user.
    if let Err(denied) = authorize(app, asker, &request.channel).await {
        return denied;
    }
    match push.websub_request(request).await {
        Ok(()) => Response::error(202, "accepted: the callback will be asked to verify"),
        Err(e @ PushError::Refused(_)) => Response::error(400, &e.to_string()),
        Err(e) => Response::error(503, &e.to_string()).header("Retry-After", "5"),
    }
}

/// `GET /channels/NAME`, the topic: its latest message (204 if none),
/// with the hub and self links (WebSub §4: discovery).
pub(crate) async fn topic(app: &App, asker: AuthRequest<'_>, channel: &str) -> Response {
    if let Err(denied) = authorize(app, asker, channel).await {
        return denied;
    }
    if let Err(e) = app.broker.attach(channel).await {
        return broker_error(&e);
    }
    let latest = app.hub.latest(channel);
    let mut response = match &latest {
        Some(message) => Response::new(200, content_type(&message.data), message.data.clone()),
        None => Response::new(204, "text/plain; charset=utf-8", ""),
    };
    if let Some(message) = &latest {
        response = response.header("ETag", format!("\"{}\"", message.id));
    }
    let base = match &app.push {
        Some(push) => {
            response = response.header("Link", format!("<{}>; rel=\"hub\"", push.hub_url()));
            push.topic_url(channel)
        }
        None => format!("/channels/{channel}"),
    };
    response.header("Link", format!("<{base}>; rel=\"self\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_routes() {
        assert_eq!(
            WebhookRoute::resolve("/webhooks"),
            Some((WebhookRoute::All, "GET, POST"))
        );
        assert_eq!(
            WebhookRoute::resolve("/webhooks/wh_1"),
            Some((WebhookRoute::One("wh_1"), "GET, DELETE"))
        );
        assert_eq!(
            WebhookRoute::resolve("/webhooks/wh_1/deliveries"),
            Some((WebhookRoute::Deliveries("wh_1"), "GET"))
        );
        assert_eq!(
            WebhookRoute::resolve("/webhooks/wh_1/secret"),
            Some((WebhookRoute::Secret("wh_1"), "POST"))
        );
        assert_eq!(WebhookRoute::resolve("/webhooks/"), None);
        assert_eq!(WebhookRoute::resolve("/webhooks/a/b"), None);
        assert_eq!(WebhookRoute::resolve("/webhooksx"), None);
        assert_eq!(WebhookRoute::resolve("/webhooks//deliveries"), None);
    }
}
