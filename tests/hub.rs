//! The pub/sub hub: ids, history and resume, subscriber back-pressure,
//! polling, shutdown, sweeping and the encode-once cache.
//!
//! No sleeps stand in for synchronisation: tests wait for a long poll to be
//! registered by watching `stats().waiters`, and the only real timers are
//! the long-poll timeouts under test (tens of milliseconds).
#![cfg(feature = "hub")]

use bytes::Bytes;
use proptest::prelude::*;
use rtwire::hub::{
    Closed, FormatKey, Hub, HubConfig, HubError, HubMessage, MessageId, ParseIdError, Resume,
    Since, SubscribeOptions, Subscription,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const EPOCH: u32 = 0x00c0_ffee;
/// A safety net so a broken hub fails a test instead of hanging it; never
/// reached when the hub works.
const HANG: Duration = Duration::from_secs(10);

fn hub() -> Hub {
    Hub::with_epoch(HubConfig::default(), EPOCH)
}

fn hub_with(config: HubConfig) -> Hub {
    Hub::with_epoch(config, EPOCH)
}

fn id(seq: u64) -> MessageId {
    MessageId { epoch: EPOCH, seq }
}

fn publish_n(hub: &Hub, channel: &str, n: usize) -> Vec<Arc<HubMessage>> {
    (0..n)
        .map(|i| {
            hub.publish(channel, Bytes::from(format!("m{i}")), None)
                .unwrap()
        })
        .collect()
}

/// Everything ready in `subscription` now, as sequence numbers.
fn drain(subscription: &mut Subscription) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(message) = subscription.try_recv().unwrap() {
        seqs.push(message.id.seq);
    }
    seqs
}

async fn recv(subscription: &mut Subscription) -> Result<Arc<HubMessage>, Closed> {
    tokio::time::timeout(HANG, subscription.recv())
        .await
        .expect("recv hung")
}

/// Yields until `n` long polls are registered.
async fn until_waiters(hub: &Hub, n: u64) {
    tokio::time::timeout(HANG, async {
        while hub.stats().waiters != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("waiters never registered");
}

#[tokio::test]
async fn live_subscriber_gets_new_messages_in_order() {
    let hub = hub();
    publish_n(&hub, "news", 2); // before the subscription: not delivered
    let mut subscription = hub.subscribe("news", Since::Live).unwrap();
    assert_eq!(subscription.resume(), Resume::Exact);
    assert_eq!(subscription.channel(), "news");
    let sent = publish_n(&hub, "news", 3);
    for expected in &sent {
        let got = recv(&mut subscription).await.unwrap();
        assert!(Arc::ptr_eq(&got, expected), "the very message, not a copy");
    }
    assert_eq!(
        sent.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![id(3), id(4), id(5)]
    );
    assert!(subscription.try_recv().unwrap().is_none());
    assert_eq!(subscription.last_seen(), Some(id(5)));
}

#[tokio::test]
async fn recv_waits_for_a_later_publish() {
    let hub = hub();
    let mut subscription = hub.subscribe("news", Since::Live).unwrap();
    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move { hub.publish("news", Bytes::from("late"), None).unwrap() }
    });
    assert_eq!(recv(&mut subscription).await.unwrap().data, "late");
    publisher.await.unwrap();
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let hub = hub();
    let mut subscription = hub.subscribe("news", Since::Live).unwrap();
    // Poll recv while nothing is queued, then drop the future.
    tokio::select! {
        biased;
        _ = subscription.recv() => panic!("nothing was published"),
        _ = tokio::task::yield_now() => {}
    }
    hub.publish("news", Bytes::from("kept"), None).unwrap();
    assert_eq!(recv(&mut subscription).await.unwrap().id, id(1));
}

#[tokio::test]
async fn after_replays_newer_history_then_live() {
    let hub = hub();
    publish_n(&hub, "c", 5);
    let mut subscription = hub.subscribe("c", Since::After(id(2))).unwrap();
    assert_eq!(subscription.resume(), Resume::Exact);
    publish_n(&hub, "c", 2);
    assert_eq!(drain(&mut subscription), [3, 4, 5, 6, 7]);

    let mut everything = hub.subscribe("c", Since::Beginning).unwrap();
    assert_eq!(drain(&mut everything), [1, 2, 3, 4, 5, 6, 7]);
    let mut up_to_date = hub.subscribe("c", Since::After(id(7))).unwrap();
    assert_eq!(up_to_date.resume(), Resume::Exact);
    assert_eq!(drain(&mut up_to_date), [] as [u64; 0]);
}

/// Publishes race with subscribing: every subscription must still see a
/// contiguous run of sequence numbers up to the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_while_publishing_has_no_gap_and_no_duplicate() {
    const TOTAL: u64 = 10_000;
    let config = HubConfig {
        history_messages: 2 * TOTAL as usize,
        queue_capacity: 2 * TOTAL as usize,
        ..HubConfig::default()
    };
    for _round in 0..3 {
        let hub = hub_with(config.clone());
        let publisher = tokio::spawn({
            let hub = hub.clone();
            async move {
                for i in 0..TOTAL {
                    hub.publish("race", Bytes::from(i.to_string()), None)
                        .unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        let midway = tokio::time::timeout(HANG, async {
            loop {
                let last = hub.history_after("race", Since::Live, 0).next.seq;
                if last >= TOTAL / 3 {
                    break last;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        let start = midway - 1000;
        let mut after = hub.subscribe("race", Since::After(id(start))).unwrap();
        let mut live = hub.subscribe("race", Since::Live).unwrap();
        let mut beginning = hub.subscribe("race", Since::Beginning).unwrap();
        assert_eq!(after.resume(), Resume::Exact);

        let after_seqs = receive_through(&mut after, TOTAL).await;
        assert_eq!(after_seqs.first(), Some(&(start + 1)));
        let live_seqs = receive_through(&mut live, TOTAL).await;
        assert!(live_seqs.first().is_none_or(|&first| first > midway));
        assert_eq!(
            receive_through(&mut beginning, TOTAL).await.first(),
            Some(&1)
        );
        publisher.await.unwrap();
    }
}

/// Receives until sequence number `last`, asserting each is one more than
/// the one before; returns them.
async fn receive_through(subscription: &mut Subscription, last: u64) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    while seqs.last() != Some(&last) {
        let seq = recv(subscription).await.unwrap().id.seq;
        if let Some(&previous) = seqs.last() {
            assert_eq!(seq, previous + 1, "gap or duplicate after {previous}");
        }
        seqs.push(seq);
    }
    seqs
}

#[tokio::test]
async fn history_evicts_by_count_and_reports_the_gap() {
    let hub = hub_with(HubConfig {
        history_messages: 5,
        ..HubConfig::default()
    });
    publish_n(&hub, "c", 10); // holds 6..=10

    let mut lost_some = hub.subscribe("c", Since::After(id(2))).unwrap();
    let gap = Resume::Gap {
        first_available: Some(id(6)),
    };
    assert_eq!(lost_some.resume(), gap);
    assert_eq!(drain(&mut lost_some), [6, 7, 8, 9, 10]);

    // Having seen 5, nothing between it and 6 was lost.
    let mut exact = hub.subscribe("c", Since::After(id(5))).unwrap();
    assert_eq!(exact.resume(), Resume::Exact);
    assert_eq!(drain(&mut exact), [6, 7, 8, 9, 10]);

    let poll = hub.history_after("c", Since::After(id(1)), 100);
    assert_eq!(poll.resume, gap);
    assert_eq!(poll.messages.len(), 5);

    // Beginning asks for whatever is held: not a gap.
    let mut beginning = hub.subscribe("c", Since::Beginning).unwrap();
    assert_eq!(beginning.resume(), Resume::Exact);
    assert_eq!(drain(&mut beginning), [6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn history_evicts_by_bytes() {
    let hub = hub_with(HubConfig {
        history_bytes: 10,
        ..HubConfig::default()
    });
    for _ in 0..5 {
        hub.publish("c", Bytes::from_static(b"four"), None).unwrap();
    }
    // 4 + 4 <= 10 < 4 + 4 + 4: two messages fit.
    let poll = hub.history_after("c", Since::Beginning, 100);
    let seqs: Vec<u64> = poll.messages.iter().map(|m| m.id.seq).collect();
    assert_eq!(seqs, [4, 5]);
    let gap = hub.history_after("c", Since::After(id(2)), 100);
    assert_eq!(
        gap.resume,
        Resume::Gap {
            first_available: Some(id(4))
        }
    );
}

#[tokio::test]
async fn oversized_message_is_refused() {
    let hub = hub_with(HubConfig {
        max_message_bytes: 3,
        ..HubConfig::default()
    });
    assert_eq!(
        hub.publish("c", Bytes::from_static(b"four"), None)
            .unwrap_err(),
        HubError::MessageTooLarge { size: 4, limit: 3 }
    );
    assert_eq!(
        hub.publish("c", Bytes::from_static(b"ok"), None)
            .unwrap()
            .id,
        id(1)
    );
}

#[tokio::test]
async fn id_from_another_epoch_is_flagged_and_gets_the_whole_history() {
    let hub = hub();
    publish_n(&hub, "c", 3);
    let old = MessageId {
        epoch: EPOCH + 1,
        seq: 2,
    };
    let mut subscription = hub.subscribe("c", Since::After(old)).unwrap();
    assert_eq!(
        subscription.resume(),
        Resume::EpochChanged { current: EPOCH }
    );
    assert_eq!(drain(&mut subscription), [1, 2, 3]);
    let poll = hub.history_after("c", Since::After(old), 100);
    assert_eq!(poll.resume, Resume::EpochChanged { current: EPOCH });
    assert_eq!(poll.messages.len(), 3);
}

#[tokio::test]
async fn id_from_the_future_is_flagged_and_treated_as_live() {
    let hub = hub();
    publish_n(&hub, "c", 3);
    let mut subscription = hub.subscribe("c", Since::After(id(99))).unwrap();
    assert_eq!(subscription.resume(), Resume::Ahead);
    assert_eq!(drain(&mut subscription), [] as [u64; 0]);
    hub.publish("c", Bytes::new(), None).unwrap();
    assert_eq!(drain(&mut subscription), [4]);

    let poll = hub.history_after("c", Since::After(id(99)), 100);
    assert_eq!(poll.resume, Resume::Ahead);
    assert!(poll.messages.is_empty());
    assert_eq!(poll.next, id(4), "a cursor the client can resync from");
}

#[tokio::test]
async fn full_queue_drops_the_slow_subscriber_not_the_fast_one() {
    let hub = hub_with(HubConfig {
        queue_capacity: 4,
        ..HubConfig::default()
    });
    let mut slow = hub.subscribe("c", Since::Live).unwrap();
    let mut fast = hub.subscribe("c", Since::Live).unwrap();
    let mut fast_seqs = Vec::new();
    for _ in 0..100 {
        hub.publish("c", Bytes::from_static(b"x"), None).unwrap();
        fast_seqs.extend(drain(&mut fast));
    }
    assert_eq!(fast_seqs, (1..=100).collect::<Vec<_>>());
    // Reported at once, ahead of the four it had queued.
    assert_eq!(slow.try_recv().unwrap_err(), Closed::Lagged);
    assert_eq!(recv(&mut slow).await.unwrap_err(), Closed::Lagged);
    let stats = hub.stats();
    assert_eq!(stats.lagged, 1);
    assert_eq!(stats.subscribers, 1);
    assert_eq!(stats.published, 100);
    assert_eq!(stats.delivered, 100 + 4);
    drop(slow);
    assert_eq!(hub.stats().subscribers, 1, "a lagged drop is counted once");
}

#[tokio::test]
async fn resuming_after_lagged_loses_nothing_within_the_history() {
    let hub = hub_with(HubConfig {
        queue_capacity: 4,
        ..HubConfig::default()
    });
    let mut subscription = hub.subscribe("c", Since::Live).unwrap();
    publish_n(&hub, "c", 2);
    assert_eq!(drain(&mut subscription), [1, 2]);
    publish_n(&hub, "c", 10); // 3..=6 queued, 7 overflows
    assert_eq!(subscription.try_recv().unwrap_err(), Closed::Lagged);
    assert_eq!(subscription.resume_from(), Since::After(id(2)));

    let mut again = hub.subscribe("c", subscription.resume_from()).unwrap();
    assert_eq!(again.resume(), Resume::Exact);
    assert_eq!(drain(&mut again), (3..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn resume_from_without_messages_is_the_starting_point() {
    let hub = hub();
    publish_n(&hub, "c", 3);
    let live = hub.subscribe("c", Since::Live).unwrap();
    assert_eq!(live.resume_from(), Since::After(id(3)));
    let after = hub.subscribe("c", Since::After(id(1))).unwrap();
    assert_eq!(after.resume_from(), Since::After(id(1)));
}

#[tokio::test]
async fn skip_sender_hides_own_messages_live_and_in_history() {
    let hub = hub();
    let alice = hub.new_sender_id();
    let bob = hub.new_sender_id();
    assert_ne!(alice, bob);
    hub.publish("room", Bytes::from("a0"), Some(alice)).unwrap();
    hub.publish("room", Bytes::from("b0"), Some(bob)).unwrap();

    let options = SubscribeOptions {
        since: Since::Beginning,
        skip_sender: Some(alice),
    };
    let mut alice_view = hub.subscribe_with("room", options).unwrap();
    let mut everyone = hub.subscribe("room", Since::Beginning).unwrap();
    hub.publish("room", Bytes::from("a1"), Some(alice)).unwrap();
    hub.publish("room", Bytes::from("b1"), Some(bob)).unwrap();
    hub.publish("room", Bytes::from("server"), None).unwrap();

    assert_eq!(drain(&mut alice_view), [2, 4, 5]);
    assert_eq!(drain(&mut everyone), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn history_after_pages_with_next_and_more() {
    let hub = hub();
    publish_n(&hub, "c", 10);
    let mut since = Since::Beginning;
    let mut pages = Vec::new();
    loop {
        let poll = hub.history_after("c", since, 4);
        assert_eq!(poll.resume, Resume::Exact);
        pages.push(poll.messages.iter().map(|m| m.id.seq).collect::<Vec<_>>());
        since = Since::After(poll.next);
        if !poll.more {
            break;
        }
    }
    assert_eq!(pages, [vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]);

    let caught_up = hub.history_after("c", since, 4);
    assert!(caught_up.messages.is_empty());
    assert_eq!(caught_up.next, id(10));
    assert!(!caught_up.more);

    let live = hub.history_after("c", Since::Live, 4);
    assert!(live.messages.is_empty());
    assert_eq!(live.next, id(10), "live means: after the newest");
}

#[tokio::test]
async fn polling_a_missing_channel_answers_without_creating_it() {
    let hub = hub();
    let poll = hub.history_after("nobody", Since::Beginning, 10);
    assert!(poll.messages.is_empty());
    assert_eq!(poll.next, id(0));
    assert_eq!(poll.resume, Resume::Exact);
    assert_eq!(hub.channel_count(), 0);
    // The cursor it handed out stays exact once the channel exists.
    hub.publish("nobody", Bytes::new(), None).unwrap();
    let poll = hub.history_after("nobody", Since::After(poll.next), 10);
    assert_eq!(poll.resume, Resume::Exact);
    assert_eq!(poll.messages[0].id, id(1));
}

#[tokio::test]
async fn wait_after_answers_at_once_when_something_is_newer() {
    let hub = hub();
    publish_n(&hub, "c", 2);
    let poll = tokio::time::timeout(
        HANG,
        hub.wait_after("c", Since::After(id(1)), 10, Duration::from_secs(3600)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(poll.messages.len(), 1);
    assert_eq!(poll.next, id(2));
    assert_eq!(hub.stats().waiters, 0);
}

#[tokio::test]
async fn wait_after_answers_at_once_on_a_gap() {
    let hub = hub_with(HubConfig {
        history_messages: 1,
        ..HubConfig::default()
    });
    publish_n(&hub, "c", 3);
    let poll = hub
        .wait_after("c", Since::After(id(1)), 10, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        poll.resume,
        Resume::Gap {
            first_available: Some(id(3))
        }
    );
}

#[tokio::test]
async fn wait_after_returns_on_the_next_publish() {
    let hub = hub();
    publish_n(&hub, "c", 3);
    let waiter = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.wait_after("c", Since::Live, 10, Duration::from_secs(3600))
                .await
        }
    });
    until_waiters(&hub, 1).await;
    hub.publish("c", Bytes::from("news"), None).unwrap();
    let poll = tokio::time::timeout(HANG, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(poll.resume, Resume::Exact);
    assert_eq!(poll.messages.len(), 1);
    assert_eq!(poll.messages[0].id, id(4));
    assert_eq!(hub.stats().waiters, 0);
}

#[tokio::test]
async fn wait_after_times_out_with_nothing() {
    let hub = hub();
    publish_n(&hub, "c", 3);
    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    let poll = hub
        .wait_after("c", Since::After(id(3)), 10, timeout)
        .await
        .unwrap();
    assert!(started.elapsed() >= timeout);
    assert!(poll.messages.is_empty());
    assert_eq!(poll.next, id(3));
    assert_eq!(poll.resume, Resume::Exact);
    assert_eq!(hub.stats().waiters, 0);
    // A publish to another channel does not end a wait.
    let other = hub.wait_after("c", Since::Live, 10, timeout);
    let (poll, _) = tokio::join!(other, async {
        hub.publish("elsewhere", Bytes::new(), None).unwrap();
    });
    assert!(poll.unwrap().messages.is_empty());
}

#[tokio::test]
async fn one_publish_wakes_every_waiter() {
    const WAITERS: u64 = 100;
    let hub = hub();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.wait_after("c", Since::Live, 10, Duration::from_secs(3600))
                    .await
            })
        })
        .collect();
    until_waiters(&hub, WAITERS).await;
    let sent = hub.publish("c", Bytes::from("all"), None).unwrap();
    for waiter in waiters {
        let poll = tokio::time::timeout(HANG, waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&poll.messages[0], &sent));
    }
}

#[tokio::test]
async fn a_cancelled_long_poll_unregisters() {
    let hub = hub();
    tokio::select! {
        biased;
        _ = hub.wait_after("c", Since::Live, 10, Duration::from_secs(3600)) => panic!("no publish"),
        _ = until_waiters(&hub, 1) => {}
    }
    assert_eq!(hub.stats().waiters, 0);
    assert_eq!(hub.sweep(), 1, "no waiter pins the channel any more");
}

#[tokio::test]
async fn shutdown_ends_subscriptions_and_waiters() {
    let hub = hub();
    let mut subscription = hub.subscribe("c", Since::Live).unwrap();
    let reader = tokio::spawn(async move { subscription.recv().await.map(|_| ()) });
    let waiter = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.wait_after("d", Since::Live, 10, Duration::from_secs(3600))
                .await
        }
    });
    until_waiters(&hub, 1).await;
    hub.shutdown();
    assert!(hub.is_shut_down());

    let read = tokio::time::timeout(HANG, reader).await.unwrap().unwrap();
    assert_eq!(read, Err(Closed::Shutdown));
    let waited = tokio::time::timeout(HANG, waiter).await.unwrap().unwrap();
    assert_eq!(waited.unwrap_err(), HubError::Shutdown);

    assert_eq!(
        hub.publish("c", Bytes::new(), None).unwrap_err(),
        HubError::Shutdown
    );
    assert_eq!(
        hub.subscribe("new", Since::Live).unwrap_err(),
        HubError::Shutdown
    );
    let late = hub.wait_after("c", Since::Live, 10, Duration::from_secs(3600));
    assert_eq!(late.await.unwrap_err(), HubError::Shutdown);
    let stats = hub.stats();
    assert_eq!((stats.subscribers, stats.waiters), (0, 0));
}

#[tokio::test]
async fn sweep_drops_idle_empty_channels_and_keeps_busy_ones() {
    let hub = hub();
    let idle = hub.config().idle_timeout;
    publish_n(&hub, "old", 3);
    publish_n(&hub, "subscribed", 1);
    let _subscription = hub.subscribe("subscribed", Since::Live).unwrap();
    drop(hub.subscribe("empty", Since::Live).unwrap());
    assert_eq!(hub.channel_count(), 3);

    // Now: only the empty channel goes; the others hold recent messages.
    assert_eq!(hub.sweep(), 1);
    assert_eq!(hub.channel_count(), 2);
    // Later than the idle time: "old" goes, the subscribed one stays.
    assert_eq!(hub.sweep_at(Instant::now() + idle), 1);
    assert_eq!(hub.channel_count(), 1);
    assert_eq!(
        hub.history_after("subscribed", Since::Beginning, 10)
            .messages
            .len(),
        1
    );
    assert_eq!(hub.sweep_at(Instant::now() + idle), 0);
}

#[tokio::test]
async fn a_swept_channel_never_reuses_ids() {
    let hub = hub();
    let idle = hub.config().idle_timeout;
    publish_n(&hub, "c", 3);
    assert_eq!(hub.sweep_at(Instant::now() + idle), 1);

    // A client that had seen everything: still exact; one that had not: a gap.
    let seen_all = hub.history_after("c", Since::After(id(3)), 10);
    assert_eq!(seen_all.resume, Resume::Exact);
    let missed_one = hub.history_after("c", Since::After(id(2)), 10);
    assert_eq!(
        missed_one.resume,
        Resume::Gap {
            first_available: None
        }
    );
    assert_eq!(hub.publish("c", Bytes::new(), None).unwrap().id, id(4));
}

#[tokio::test(start_paused = true)]
async fn a_full_channel_table_evicts_the_unlistened_least_recent_first() {
    let hub = hub_with(HubConfig {
        max_channels: 3,
        ..HubConfig::default()
    });
    hub.publish("old", Bytes::from("1"), None).unwrap();
    tokio::time::advance(Duration::from_millis(1)).await;
    hub.publish("new", Bytes::from("2"), None).unwrap();
    let listened = hub.subscribe("listened", Since::Live).unwrap();
    // Full: the channel published to longest ago that nobody listens to
    // makes room, however young it is.
    hub.publish("third", Bytes::new(), None).unwrap();
    assert!(hub
        .history_after("old", Since::Beginning, 10)
        .messages
        .is_empty());
    assert_eq!(
        hub.history_after("new", Since::Beginning, 10)
            .messages
            .len(),
        1
    );
    assert_eq!(hub.channel_count(), 3);
    // Its ids are not reused: a new "old" numbers above them.
    assert!(hub.publish("old", Bytes::new(), None).unwrap().id.seq > 1);
    drop(listened);
}

#[tokio::test]
async fn channel_limit_holds_when_every_channel_has_a_listener() {
    let hub = hub_with(HubConfig {
        max_channels: 2,
        ..HubConfig::default()
    });
    let a = hub.subscribe("a", Since::Live).unwrap();
    let b = hub.subscribe("b", Since::Live).unwrap();
    let full = HubError::TooManyChannels { limit: 2 };
    assert_eq!(hub.publish("c", Bytes::new(), None).unwrap_err(), full);
    assert_eq!(hub.subscribe("c", Since::Live).unwrap_err(), full);
    let waited = hub.wait_after("c", Since::Live, 1, Duration::ZERO).await;
    assert_eq!(waited.unwrap_err(), full);
    // Existing channels still work.
    hub.publish("a", Bytes::new(), None).unwrap();
    drop(b);
    hub.publish("c", Bytes::new(), None).unwrap();
    drop(a);
}

#[tokio::test]
async fn any_channel_name_is_fine() {
    let hub = hub();
    let long = "x".repeat(100_000);
    for name in ["", "\0", "é/../\r\n", long.as_str()] {
        hub.publish(name, Bytes::from_static(b"x"), None).unwrap();
        let poll = hub.history_after(name, Since::Beginning, 10);
        assert_eq!(&*poll.messages[0].channel, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_is_encoded_once_for_all_subscribers() {
    let hub = hub();
    let mut subscriptions: Vec<_> = (0..50)
        .map(|_| hub.subscribe("c", Since::Live).unwrap())
        .collect();
    hub.publish("c", Bytes::from("payload"), None).unwrap();

    let sse_calls = Arc::new(AtomicUsize::new(0));
    let json_calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut subscription in subscriptions.drain(..) {
        let (sse_calls, json_calls) = (sse_calls.clone(), json_calls.clone());
        tasks.push(tokio::spawn(async move {
            let message = subscription.recv().await.unwrap();
            let sse = message.encoded(FormatKey::SSE, |m| {
                sse_calls.fetch_add(1, Ordering::SeqCst);
                Bytes::from(format!("id: {}\ndata: payload\n\n", m.id))
            });
            let json = message.encoded(FormatKey::JSON, |_| {
                json_calls.fetch_add(1, Ordering::SeqCst);
                Bytes::from_static(b"{}")
            });
            (sse, json)
        }));
    }
    let mut encoded = Vec::new();
    for task in tasks {
        encoded.push(task.await.unwrap());
    }
    assert_eq!(sse_calls.load(Ordering::SeqCst), 1);
    assert_eq!(json_calls.load(Ordering::SeqCst), 1);
    let (first_sse, _) = &encoded[0];
    assert_eq!(
        &first_sse[..],
        format!("id: {}\ndata: payload\n\n", id(1)).as_bytes()
    );
    for (sse, json) in &encoded {
        assert_eq!(sse.as_ptr(), first_sse.as_ptr(), "shared, not re-encoded");
        assert_eq!(&json[..], b"{}");
    }
}

#[test]
fn format_keys_are_bounded() {
    assert_eq!(FormatKey::new(0), Some(FormatKey::SSE));
    assert_eq!(FormatKey::new(4), Some(FormatKey::OTHER));
    assert_eq!(FormatKey::new(FormatKey::SLOTS as u8), None);
}

#[test]
fn stats_count_publishes_and_deliveries() {
    let hub = hub();
    publish_n(&hub, "c", 2);
    let mut replayed = hub.subscribe("c", Since::Beginning).unwrap();
    let _live = hub.subscribe("c", Since::Live).unwrap();
    publish_n(&hub, "c", 1);
    let stats = hub.stats();
    assert_eq!(stats.published, 3);
    assert_eq!(stats.delivered, 2 + 2, "2 replayed, 1 live to each of 2");
    assert_eq!(stats.subscribers, 2);
    assert_eq!(stats.channels, 1);
    assert_eq!(drain(&mut replayed), [1, 2, 3]);
}

#[test]
fn hubs_get_random_epochs() {
    let epochs: std::collections::HashSet<u32> = (0..8).map(|_| Hub::new().epoch()).collect();
    assert!(epochs.len() > 1);
    let hub = Hub::new();
    let message = hub.publish("c", Bytes::new(), None).unwrap();
    assert_eq!(message.id.epoch, hub.epoch());
}

#[test]
fn message_id_text_form() {
    let id = MessageId {
        epoch: 0xdead_beef,
        seq: 42,
    };
    assert_eq!(id.to_string(), "deadbeef-42");
    assert_eq!("deadbeef-42".parse(), Ok(id));
    assert_eq!("00000001-0".parse(), Ok(MessageId { epoch: 1, seq: 0 }));
    for garbage in [
        "",
        "42",
        "deadbeef",
        "deadbeef-",
        "DEADBEEF-42",
        "deadbee-42",
        "deadbeef0-42",
        "deadbeef-042",
        "deadbeef--42",
        "deadbeef-4 2",
        " deadbeef-42",
        "deadbeef-42\n",
        "deadbeef-99999999999999999999",
    ] {
        assert!(garbage.parse::<MessageId>().is_err(), "{garbage:?}");
    }
    let overlong = format!("deadbeef-{}", "1".repeat(1 << 20));
    assert_eq!(overlong.parse::<MessageId>(), Err(ParseIdError::TooLong));
}

proptest! {
    #[test]
    fn message_ids_round_trip(epoch: u32, seq: u64) {
        let id = MessageId { epoch, seq };
        prop_assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
    }

    /// Whatever text arrives, parsing never panics, and what it accepts is
    /// exactly the canonical form.
    #[test]
    fn parsing_accepts_only_canonical_text(text in "[0-9a-fA-F+ -]{0,32}|\\PC{0,40}") {
        if let Ok(id) = text.parse::<MessageId>() {
            prop_assert_eq!(id.to_string(), text);
        }
    }
}

#[tokio::test]
async fn a_subscriber_queue_is_bounded_in_bytes_too() {
    let hub = hub_with(HubConfig {
        queue_bytes: 1000,
        ..HubConfig::default()
    });
    let mut slow = hub.subscribe("c", Since::Live).unwrap();
    let mut big = hub.subscribe("big", Since::Live).unwrap();
    // One message always fits an empty queue, whatever its size.
    hub.publish("big", Bytes::from(vec![1u8; 5000]), None)
        .unwrap();
    assert_eq!(big.recv().await.unwrap().data.len(), 5000);
    hub.publish("c", Bytes::from(vec![1u8; 400]), None).unwrap();
    hub.publish("c", Bytes::from(vec![2u8; 400]), None).unwrap();
    assert_eq!(hub.stats().lagged, 0);
    // 1200 bytes would wait: dropped, well under the message limit.
    hub.publish("c", Bytes::from(vec![3u8; 400]), None).unwrap();
    assert_eq!(hub.stats().lagged, 1);
    assert_eq!(slow.recv().await.unwrap_err(), Closed::Lagged);
}

#[tokio::test]
async fn the_history_bound_counts_cached_encodings() {
    let hub = hub_with(HubConfig {
        history_bytes: 1000,
        ..HubConfig::default()
    });
    let first = hub
        .publish("c", Bytes::from(vec![b'a'; 300]), None)
        .unwrap();
    // A transport encodes it into a form twice its size.
    first.encoded(FormatKey::SSE, |m| {
        Bytes::from(vec![b'x'; 2 * m.data.len()])
    });
    assert_eq!(first.retained_bytes(), 900);
    // 300 + 600 + 300 > 1000: the first message goes, though the
    // payloads alone (600 bytes) would fit.
    hub.publish("c", Bytes::from(vec![b'b'; 300]), None)
        .unwrap();
    let poll = hub.history_after("c", Since::Beginning, 10);
    assert_eq!(poll.messages.len(), 1);
    assert_eq!(poll.messages[0].data[0], b'b');
    // Encodings made after a message left the history are not charged.
    first.encoded(FormatKey::JSON, |_| Bytes::from(vec![0u8; 10_000]));
    hub.publish("c", Bytes::from(vec![b'c'; 300]), None)
        .unwrap();
    assert_eq!(
        hub.history_after("c", Since::Beginning, 10).messages.len(),
        2
    );
}

#[tokio::test]
async fn all_histories_together_are_bounded_oldest_channels_trimmed_first() {
    let hub = hub_with(HubConfig {
        history_bytes: 1 << 20,
        history_bytes_total: 8000,
        ..HubConfig::default()
    });
    // One client publishing 1000 bytes to each of 20 names: each channel
    // alone is far under its own bound.
    let firsts: Vec<_> = (0..20)
        .map(|i| {
            hub.publish(&format!("c{i}"), Bytes::from(vec![b'p'; 1000]), None)
                .unwrap()
        })
        .collect();
    let held = hub.stats().history_bytes;
    assert!(held <= 8000, "histories hold {held} bytes");
    // The newest channel kept its message; the oldest lost it, and a
    // client resuming from before it is told of the gap.
    let newest = hub.history_after("c19", Since::Beginning, 10);
    assert_eq!(newest.messages.len(), 1);
    let oldest = hub.history_after("c0", Since::After(id(firsts[0].id.seq - 1)), 10);
    assert!(oldest.messages.is_empty());
    assert!(
        matches!(oldest.resume, Resume::Gap { .. }),
        "{:?}",
        oldest.resume
    );
    // Cached encodings count against the hub-wide bound as well.
    let before = hub.stats().history_bytes;
    firsts[19].encoded(FormatKey::SSE, |m| Bytes::from(vec![b'x'; m.data.len()]));
    assert_eq!(hub.stats().history_bytes, before + 1000);
    // Evicted and swept channels give their bytes back.
    assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(3600)), 20);
    assert_eq!(hub.stats().history_bytes, 0);
}

#[tokio::test]
async fn had_more_says_whether_messages_waited_behind_the_one_taken() {
    let hub = hub();
    let mut history = hub.subscribe("more", Since::Live).unwrap();
    publish_n(&hub, "more", 2);
    // From the history, then live: both report what waits behind them.
    let mut subscription = hub.subscribe("more", Since::Beginning).unwrap();
    let mut hints = Vec::new();
    publish_n(&hub, "more", 2);
    while let Some(message) = subscription.try_recv().unwrap() {
        hints.push((message.id.seq, subscription.had_more()));
    }
    assert_eq!(hints.last(), Some(&(4, false)), "{hints:?}");
    assert!(hints[..3].iter().all(|(_, more)| *more), "{hints:?}");
    assert!(!subscription.had_more(), "nothing taken: nothing behind");
    // Live only: three queued, the last has nothing behind it.
    let mut taken = Vec::new();
    for _ in 0..4 {
        let message = history.recv().await.unwrap();
        taken.push(history.had_more());
        assert!(message.id.seq <= 4);
    }
    assert_eq!(taken, vec![true, true, true, false]);
}
