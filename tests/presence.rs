//! Presence over every transport: who is in a channel, as `/ws` commands
//! and notices, SSE events, and `GET`/`DELETE /channels/NAME/presence`,
//! with leases for polling clients.
#![cfg(feature = "serve")]

mod common;

use common::serve::*;
use rtwire::hub::PresenceConfig;
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, TokenAuth};
use std::time::Duration;

fn auth() -> TokenAuth {
    TokenAuth {
        user_tokens: Some(user_tokens()),
        ..TokenAuth::default()
    }
}

async fn start(lease: Duration) -> Running {
    let mut config = ServeConfig::default();
    config.hub.presence = PresenceConfig::default().lease(lease);
    start_with(config, auth()).await
}

/// A `/ws` socket for `user`.
async fn ws_as(running: &Running, user: &str) -> Ws {
    let mut ws = ws_connect(running.addr, &format!("?user_token={}", user_token(user))).await;
    // Joined to its private room first.
    let joined = ws_next_text(&mut ws).await;
    assert!(joined.contains(&format!("user:{user}")), "{joined}");
    ws
}

async fn command(ws: &mut Ws, json: &str) -> String {
    ws.send(Message::text(json.to_owned())).await.unwrap();
    ws_next_text(ws).await
}

/// The next text that is a presence notice (messages in between fail).
async fn next_change(ws: &mut Ws) -> String {
    let text = ws_next_text(ws).await;
    assert!(text.contains("\"type\":\"presence"), "{text}");
    text
}

fn change(channel: &str, joined: &[&str], left: &[&str]) -> String {
    let list = |names: &[&str]| {
        let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        quoted.join(",")
    };
    format!(
        r#"{{"type":"presence_change","channel":"{channel}","joined":[{}],"left":[{}]}}"#,
        list(joined),
        list(left)
    )
}

async fn members(running: &Running, channel: &str) -> String {
    let (status, _, body) = get(running.addr, &format!("/channels/{channel}/presence")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn websocket_members_see_each_other_come_and_go() {
    let running = start(Duration::from_secs(30)).await;
    let mut alice = ws_as(&running, "alice").await;
    let joined = command(&mut alice, r#"{"op":"join","channel":"room","ref":"j1"}"#).await;
    assert!(
        joined.contains("\"type\":\"joined\"") && joined.ends_with(r#","ref":"j1"}"#),
        "{joined}"
    );
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &["alice"], &[])
    );

    let mut bob = ws_as(&running, "bob").await;
    command(&mut bob, r#"{"op":"join","channel":"room"}"#).await;
    assert_eq!(next_change(&mut alice).await, change("room", &["bob"], &[]));
    let list = command(&mut bob, r#"{"op":"presence","channel":"room","ref":"p"}"#).await;
    // Bob's own arrival may come before the list.
    let list = match list.contains("presence_change") {
        true => ws_next_text(&mut bob).await,
        false => list,
    };
    assert_eq!(
        list,
        r#"{"type":"presence","channel":"room","members":["alice","bob"],"ref":"p"}"#
    );
    assert_eq!(
        members(&running, "room").await,
        "{\"channel\":\"room\",\"members\":[\"alice\",\"bob\"]}\n"
    );

    // A second socket of bob's is still one member; bob leaves when both go.
    let mut bob_again = ws_as(&running, "bob").await;
    command(&mut bob_again, r#"{"op":"join","channel":"room"}"#).await;
    let left = command(&mut bob, r#"{"op":"leave","channel":"room"}"#).await;
    assert!(left.contains("\"type\":\"left\""), "{left}");
    drop(bob_again);
    assert_eq!(next_change(&mut alice).await, change("room", &[], &["bob"]));
    assert_eq!(
        members(&running, "room").await,
        "{\"channel\":\"room\",\"members\":[\"alice\"]}\n"
    );

    // Ping for clients that cannot see WebSocket pings.
    let pong = command(&mut alice, r#"{"op":"ping","ref":"7"}"#).await;
    assert_eq!(pong, r#"{"type":"pong","ref":"7"}"#);
    // Errors carry the ref too.
    let refused = command(
        &mut alice,
        r#"{"op":"presence","channel":"user:bob","ref":"x"}"#,
    )
    .await;
    assert!(
        refused.contains("\"type\":\"error\"") && refused.contains("private"),
        "{refused}"
    );
    assert!(refused.ends_with(r#","ref":"x"}"#), "{refused}");
    running.shutdown().await;
}

#[tokio::test]
async fn sse_streams_hold_presence_and_hear_changes() {
    let running = start(Duration::from_secs(30)).await;
    let mut alice = ws_as(&running, "alice").await;
    command(&mut alice, r#"{"op":"join","channel":"room"}"#).await;
    next_change(&mut alice).await;

    let path = format!("/channels/room/events?user_token={}", user_token("carol"));
    let mut carol = Sse::open(running.addr, &path, None).await;
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &["carol"], &[])
    );
    let heard = carol.next().await;
    assert_eq!(heard.event, "presence_change");
    assert_eq!(heard.id, "", "presence events carry no id");
    assert_eq!(heard.data, [change("room", &["carol"], &[])]);

    // A message still comes as before, with its id.
    let id = publish(running.addr, "room", "hi").await;
    let message = carol.next().await;
    assert_eq!(
        (message.id.as_str(), message.data[0].as_str()),
        (id.as_str(), "hi")
    );

    // Alice going is heard on the stream.
    drop(alice);
    let heard = carol.next().await;
    assert_eq!(heard.data, [change("room", &[], &["alice"])]);

    // An anonymous stream hears changes but is not listed.
    let mut anonymous = Sse::open(running.addr, "/channels/room/events", None).await;
    let mut dave = ws_as(&running, "dave").await;
    command(&mut dave, r#"{"op":"join","channel":"room"}"#).await;
    assert_eq!(next_change(&mut dave).await, change("room", &["dave"], &[]));
    let heard = anonymous.next().await;
    assert_eq!(heard.data, [change("room", &["dave"], &[])]);
    assert_eq!(
        members(&running, "room").await,
        "{\"channel\":\"room\",\"members\":[\"carol\",\"dave\"]}\n"
    );
    drop(carol);
    assert_eq!(
        next_change(&mut dave).await,
        change("room", &[], &["carol"])
    );
    running.shutdown().await;
}

#[tokio::test]
async fn polls_lease_presence_until_they_stop_or_leave() {
    let running = start(Duration::from_secs(1)).await;
    let mut alice = ws_as(&running, "alice").await;
    command(&mut alice, r#"{"op":"join","channel":"room"}"#).await;
    next_change(&mut alice).await;
    let token = user_token("erin");

    // A short poll leases presence; DELETE ends the lease at once.
    let (status, _, _) = get(
        running.addr,
        &format!("/channels/room/poll?user_token={token}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &["erin"], &[])
    );
    let leave = format!(
        "DELETE /channels/room/presence HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, _) = exchange(running.addr, &leave).await;
    assert_eq!(status, 204);
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &[], &["erin"])
    );

    // A poll that is not followed by another lapses at the sweep.
    get(
        running.addr,
        &format!("/channels/room/poll?user_token={token}"),
    )
    .await;
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &["erin"], &[])
    );
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &[], &["erin"])
    );

    // A held long poll keeps its member present while it waits, and
    // leases it when answered.
    let addr = running.addr;
    let path = format!("/channels/room/long-poll?timeout=30&user_token={token}");
    let held = tokio::spawn(async move { get(addr, &path).await });
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &["erin"], &[])
    );
    let id = publish(running.addr, "room", "wake").await;
    let message = ws_next_text(&mut alice).await;
    assert!(message.contains(&id), "{message}");
    let (status, _, body) = held.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&id), "{body}");
    // Then the lease lapses.
    assert_eq!(
        next_change(&mut alice).await,
        change("room", &[], &["erin"])
    );

    // Leaving needs an identity.
    let anonymous =
        "DELETE /channels/room/presence HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, _, body) = exchange(running.addr, anonymous).await;
    assert_eq!(status, 400, "{body}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_http_list_has_an_etag_and_private_rooms_are_not_listed() {
    let running = start(Duration::from_secs(30)).await;
    let (status, head, body) = get(running.addr, "/channels/room/presence").await;
    assert_eq!(status, 200);
    assert_eq!(body, "{\"channel\":\"room\",\"members\":[]}\n");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("an ETag")
        .to_owned();
    let again = format!(
        "GET /channels/room/presence HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, _) = exchange(running.addr, &again).await;
    assert_eq!(status, 304);

    let mut alice = ws_as(&running, "alice").await;
    command(&mut alice, r#"{"op":"join","channel":"room"}"#).await;
    next_change(&mut alice).await;
    let (status, _, body) = exchange(running.addr, &again).await;
    assert_eq!(status, 200, "a change moves the ETag");
    assert!(body.contains("alice"), "{body}");

    // user:alice is alice's alone: not tracked, and private to others.
    let own = format!(
        "/channels/user:alice/presence?user_token={}",
        user_token("alice")
    );
    let (status, _, body) = get(running.addr, &own).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"channel\":\"user:alice\",\"members\":[]}\n")
    );
    let (status, _, _) = get(running.addr, "/channels/user:alice/presence").await;
    assert_eq!(status, 403);
    let (status, _, _) = exchange(
        running.addr,
        "POST /channels/room/presence HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    running.shutdown().await;
}

#[tokio::test]
async fn the_client_module_is_served() {
    let running = start(Duration::from_secs(30)).await;
    let (status, head, body) = get(running.addr, "/rtwire.js").await;
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert_eq!(body, include_str!("../client/rtwire.js"));
    let (status, _, body) = get(running.addr, "/rtwire.d.ts").await;
    assert_eq!(status, 200);
    assert_eq!(body, include_str!("../client/rtwire.d.ts"));
    running.shutdown().await;
}
