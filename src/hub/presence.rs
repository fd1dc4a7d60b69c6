//! Presence: which identities are in a channel, over any transport.
//!
//! A member is an identity (the name a verified user token proves; see
//! `serve::TokenAuth`), never a connection: two tabs of one user are one
//! member, present while either is. Anonymous clients are not listed.
//!
//! Two ways to be present:
//! - a [`PresenceHold`], kept by a connection that stays open (a `/ws`
//!   room, an SSE stream, a held long poll) and dropped when it ends;
//! - a lease ([`Presence::touch`]), renewed by every poll of a client that
//!   comes and goes, and ended by [`Presence::sweep`] once
//!   [`PresenceConfig::lease`] passes without one, or by
//!   [`Presence::release`] when the client says it is leaving.
//!
//! Every change (a member joins or leaves) goes to the channel's
//! watchers ([`Presence::watch`]), which forward it to their clients.
//!
//! Limits: at most [`PresenceConfig::max_members`] members per channel and
//! [`PresenceConfig::max_entries`] (channel, member) pairs in all; past
//! them, a new member is simply not listed (its connection works as ever).
//! Private rooms (`user:NAME`) are not tracked: only NAME can be there.
//!
//! One mutex guards the table: presence changes when clients come and go,
//! not per message, so it is never on the publish path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Presence limits ([`HubConfig::presence`](super::HubConfig::presence)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceConfig {
    /// The most members one channel lists (default 1000).
    pub max_members: usize,
    /// The most (channel, member) pairs in all (default 100 000).
    pub max_entries: usize,
    /// How long a polling client stays present after its last poll
    /// (default 30 s).
    pub lease: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            max_members: 1000,
            max_entries: 100_000,
            lease: Duration::from_secs(30),
        }
    }
}

impl PresenceConfig {
    /// These limits with `lease` as the polling clients' lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// These limits with at most `max` members per channel.
    pub fn max_members(mut self, max: usize) -> Self {
        self.max_members = max;
        self
    }
}

/// One member joining or leaving a channel, as its watchers get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceChange {
    /// The channel.
    pub channel: Arc<str>,
    /// The identity.
    pub member: Arc<str>,
    /// `true`: joined; `false`: left.
    pub joined: bool,
}

/// Who is in a channel now ([`Presence::snapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceSnapshot {
    /// The members, sorted.
    pub members: Vec<String>,
    /// Changes with every join and leave in the channel (and never goes
    /// back), for an `ETag`. 0 when the channel has no one and no watcher.
    pub revision: u64,
}

/// How many changes a watcher may fall behind before it misses some (it
/// is then told [`broadcast::error::RecvError::Lagged`] and should send
/// its client a fresh snapshot).
const WATCH_CAPACITY: usize = 64;

#[derive(Default)]
struct Member {
    holds: u32,
    lease_until: Option<Instant>,
}

impl Member {
    fn present(&self, now: Instant) -> bool {
        self.holds > 0 || self.lease_until.is_some_and(|until| until > now)
    }
}

struct Room {
    members: HashMap<Arc<str>, Member>,
    changes: broadcast::Sender<PresenceChange>,
    revision: u64,
}

#[derive(Default)]
struct Table {
    rooms: HashMap<Arc<str>, Room>,
    entries: usize,
    /// The last revision handed out, hub-wide, so a room made again
    /// never repeats an old room's revision.
    revision: u64,
}

/// The presence table of a hub: cheap to clone, every clone is the same.
#[derive(Clone, Default)]
pub struct Presence {
    table: Arc<Mutex<Table>>,
    config: Arc<PresenceConfig>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.lock();
        f.debug_struct("Presence")
            .field("rooms", &table.rooms.len())
            .field("entries", &table.entries)
            .finish()
    }
}

/// Keeps one identity present in one channel until dropped.
#[must_use = "the member leaves when the hold is dropped"]
pub struct PresenceHold {
    presence: Presence,
    channel: Arc<str>,
    member: Arc<str>,
}

impl std::fmt::Debug for PresenceHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceHold")
            .field("channel", &self.channel)
            .field("member", &self.member)
            .finish()
    }
}

impl Drop for PresenceHold {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut table = self.presence.lock();
        let Some(room) = table.rooms.get_mut(&self.channel) else {
            return;
        };
        let Some(member) = room.members.get_mut(&self.member) else {
            return;
        };
        member.holds = member.holds.saturating_sub(1);
        if !member.present(now) {
            table.remove_member(&self.channel, &self.member);
        }
    }
}

/// Whether presence is tracked in `channel` (not in private rooms).
fn tracked(channel: &str) -> bool {
    !channel.starts_with("user:")
}

impl Table {
    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// The member entry for (`channel`, `member`), made if the limits
    /// allow; `None` if they do not.
    fn entry(
        &mut self,
        config: &PresenceConfig,
        channel: &str,
        member: &str,
    ) -> Option<&mut Member> {
        let exists = self
            .rooms
            .get(channel)
            .is_some_and(|room| room.members.contains_key(member));
        if !exists {
            let members = self.rooms.get(channel).map_or(0, |room| room.members.len());
            if members >= config.max_members || self.entries >= config.max_entries {
                return None;
            }
            let revision = self.next_revision();
            let room = self.room(channel);
            let member: Arc<str> = member.into();
            room.members.insert(member.clone(), Member::default());
            room.revision = revision;
            let _ = room.changes.send(PresenceChange {
                channel: channel.into(),
                member,
                joined: true,
            });
            self.entries += 1;
        }
        self.rooms.get_mut(channel)?.members.get_mut(member)
    }

    fn room(&mut self, channel: &str) -> &mut Room {
        self.rooms.entry(channel.into()).or_insert_with(|| Room {
            members: HashMap::new(),
            changes: broadcast::channel(WATCH_CAPACITY).0,
            revision: 0,
        })
    }

    fn remove_member(&mut self, channel: &str, member: &str) {
        let revision = self.next_revision();
        let Some(room) = self.rooms.get_mut(channel) else {
            return;
        };
        let Some((member, _)) = room.members.remove_entry(member) else {
            return;
        };
        self.entries -= 1;
        room.revision = revision;
        let _ = room.changes.send(PresenceChange {
            channel: channel.into(),
            member,
            joined: false,
        });
        self.forget_if_empty(channel);
    }

    /// Drops a room with no member and no watcher.
    fn forget_if_empty(&mut self, channel: &str) {
        if let Some(room) = self.rooms.get(channel) {
            if room.members.is_empty() && room.changes.receiver_count() == 0 {
                self.rooms.remove(channel);
            }
        }
    }
}

impl Presence {
    /// An empty table with these limits.
    pub fn new(config: PresenceConfig) -> Presence {
        Presence {
            table: Arc::default(),
            config: Arc::new(config),
        }
    }

    /// The limits.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table is consistent between statements: a panic elsewhere
        // leaves nothing half-done worth refusing service for.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `member` present in `channel` until the hold is dropped.
    /// `None` when presence is not tracked there (a private room) or the
    /// limits are reached.
    pub fn hold(&self, channel: &str, member: &str) -> Option<PresenceHold> {
        if !tracked(channel) {
            return None;
        }
        let mut table = self.lock();
        let entry = table.entry(&self.config, channel, member)?;
        entry.holds += 1;
        drop(table);
        Some(PresenceHold {
            presence: self.clone(),
            channel: channel.into(),
            member: member.into(),
        })
    }

    /// Makes `member` present in `channel` for [`PresenceConfig::lease`]
    /// from `now` (a poll). Returns whether it is listed.
    pub fn touch(&self, channel: &str, member: &str, now: Instant) -> bool {
        if !tracked(channel) {
            return false;
        }
        let lease = self.config.lease;
        let mut table = self.lock();
        match table.entry(&self.config, channel, member) {
            Some(entry) => {
                entry.lease_until = Some(now + lease);
                true
            }
            None => false,
        }
    }

    /// Ends `member`'s lease in `channel` (a polling client leaving);
    /// it stays present while it holds a connection there. Returns
    /// whether it had a lease.
    pub fn release(&self, channel: &str, member: &str) -> bool {
        let now = Instant::now();
        let mut table = self.lock();
        let Some(entry) = table
            .rooms
            .get_mut(channel)
            .and_then(|room| room.members.get_mut(member))
        else {
            return false;
        };
        let had = entry.lease_until.take().is_some();
        if !entry.present(now) {
            table.remove_member(channel, member);
        }
        had
    }

    /// Ends the leases that lapsed by `now`; returns how many members left.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut table = self.lock();
        let lapsed: Vec<(Arc<str>, Arc<str>)> = table
            .rooms
            .iter()
            .flat_map(|(channel, room)| {
                room.members
                    .iter()
                    .filter(|(_, member)| !member.present(now))
                    .map(move |(name, _)| (channel.clone(), name.clone()))
            })
            .collect();
        for (channel, member) in &lapsed {
            table.remove_member(channel, member);
        }
        // Rooms whose last watcher went away while members stayed out.
        let empty: Vec<Arc<str>> = table
            .rooms
            .iter()
            .filter(|(_, room)| room.members.is_empty() && room.changes.receiver_count() == 0)
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in empty {
            table.rooms.remove(&channel);
        }
        lapsed.len()
    }

    /// Who is in `channel` now.
    pub fn snapshot(&self, channel: &str) -> PresenceSnapshot {
        let now = Instant::now();
        let table = self.lock();
        let Some(room) = table.rooms.get(channel) else {
            return PresenceSnapshot::default();
        };
        let mut members: Vec<String> = room
            .members
            .iter()
            .filter(|(_, member)| member.present(now))
            .map(|(name, _)| name.to_string())
            .collect();
        members.sort_unstable();
        PresenceSnapshot {
            members,
            revision: room.revision,
        }
    }

    /// The changes in `channel` from now on. `None` for private rooms.
    /// A watcher that falls 64 changes behind is told
    /// `Lagged` and should take a fresh [`Presence::snapshot`].
    pub fn watch(&self, channel: &str) -> Option<broadcast::Receiver<PresenceChange>> {
        if !tracked(channel) {
            return None;
        }
        let mut table = self.lock();
        Some(table.room(channel).changes.subscribe())
    }

    /// (channel, member) pairs listed now, in all channels.
    pub fn entries(&self) -> usize {
        self.lock().entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rx: &mut broadcast::Receiver<PresenceChange>) -> Option<(String, bool)> {
        rx.try_recv().ok().map(|c| (c.member.to_string(), c.joined))
    }

    #[test]
    fn holds_count_per_identity_and_changes_go_to_watchers() {
        let presence = Presence::default();
        let mut rx = presence.watch("room").unwrap();
        let a1 = presence.hold("room", "alice").unwrap();
        let a2 = presence.hold("room", "alice").unwrap();
        let b = presence.hold("room", "bob").unwrap();
        assert_eq!(presence.snapshot("room").members, ["alice", "bob"]);
        assert_eq!(change(&mut rx), Some(("alice".into(), true)));
        assert_eq!(change(&mut rx), Some(("bob".into(), true)));
        assert_eq!(change(&mut rx), None, "a second tab is no new member");
        drop(a1);
        assert_eq!(change(&mut rx), None, "alice still has a tab open");
        drop(a2);
        assert_eq!(change(&mut rx), Some(("alice".into(), false)));
        assert_eq!(presence.snapshot("room").members, ["bob"]);
        drop(b);
        assert_eq!(change(&mut rx), Some(("bob".into(), false)));
        assert_eq!(presence.entries(), 0);
    }

    #[test]
    fn leases_lapse_at_the_sweep_and_end_on_release() {
        let presence = Presence::new(PresenceConfig::default().lease(Duration::from_secs(10)));
        let t0 = Instant::now();
        assert!(presence.touch("room", "carol", t0));
        assert!(presence.touch("room", "dave", t0));
        assert_eq!(presence.sweep(t0 + Duration::from_secs(9)), 0);
        assert!(presence.touch("room", "carol", t0 + Duration::from_secs(9)));
        assert_eq!(
            presence.sweep(t0 + Duration::from_secs(11)),
            1,
            "dave lapsed"
        );
        assert!(presence.release("room", "carol"));
        assert!(presence.snapshot("room").members.is_empty());
        assert_eq!(presence.entries(), 0);
        assert!(!presence.release("room", "carol"));
    }

    #[test]
    fn a_lease_and_a_hold_together_keep_a_member_until_both_end() {
        let presence = Presence::default();
        let hold = presence.hold("room", "erin").unwrap();
        assert!(presence.touch("room", "erin", Instant::now()));
        presence.release("room", "erin");
        assert_eq!(presence.snapshot("room").members, ["erin"], "still held");
        drop(hold);
        assert!(presence.snapshot("room").members.is_empty());
    }

    #[test]
    fn limits_leave_new_members_unlisted_and_private_rooms_untracked() {
        let presence = Presence::new(PresenceConfig::default().max_members(2));
        let _a = presence.hold("room", "a").unwrap();
        let _b = presence.hold("room", "b").unwrap();
        assert!(presence.hold("room", "c").is_none());
        assert!(!presence.touch("room", "c", Instant::now()));
        let _a_again = presence.hold("room", "a").expect("a member already listed");
        assert!(presence.hold("user:a", "a").is_none());
        assert!(presence.watch("user:a").is_none());
        assert_eq!(presence.entries(), 2);
    }

    #[test]
    fn revisions_move_on_every_change_and_rooms_are_forgotten() {
        let presence = Presence::default();
        assert_eq!(presence.snapshot("room").revision, 0);
        let a = presence.hold("room", "a").unwrap();
        let first = presence.snapshot("room").revision;
        let b = presence.hold("room", "b").unwrap();
        let second = presence.snapshot("room").revision;
        assert!(second > first);
        drop(a);
        drop(b);
        assert_eq!(presence.snapshot("room"), PresenceSnapshot::default());
        let _a = presence.hold("room", "a").unwrap();
        assert!(presence.snapshot("room").revision > second, "never repeats");
    }
}
