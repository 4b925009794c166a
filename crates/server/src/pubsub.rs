//! Pub/Sub: the registry of subscriptions, each client's outbound message
//! queue, and keyspace notifications.
//!
//! The registry maps channels, patterns and shard channels to their
//! subscribers, in subscription order, each map under its own lock; it
//! never touches the keyspace, so publishing (also from inside a write
//! command that holds shard locks) cannot deadlock with it.
//!
//! Publishing only enqueues: the message is encoded once and appended to
//! each subscriber's [`Subscriber`] queue, whose connection task writes
//! whatever has accumulated in one go. A subscriber that does not keep up
//! is disconnected once its queue passes the pubsub class of
//! `client-output-buffer-limit`, so a client that never reads cannot make
//! the server's memory grow. A message for the publishing client itself
//! goes straight into its reply buffer, where Redis 7.0 puts it (before
//! the command's own reply).
//!
//! A publisher on an event loop does not wake subscribers' connections
//! itself: it leaves them to its loop ([`WakeLater`]), which wakes each
//! once when the connections ready in the same pass have run, as Redis
//! writes to subscribers once per event-loop pass. Waking a connection on
//! another loop costs a system call on both sides; one wake-up now
//! carries the messages of the whole pass instead of one or two.

use std::cell::RefCell;
use std::collections::HashMap as StdHashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use ferrokv_resp::Reply;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::client::ClientShared;

/// Channel maps are read by every PUBLISH: ahash, seeded per process like
/// the keyspace's, rather than SipHash.
type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;

/// The three namespaces a client can subscribe in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        self as usize
    }

    /// The first element of subscribe confirmations.
    pub fn subscribe_name(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    pub fn unsubscribe_name(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// A client's pub/sub state: its subscriptions (the registry holds the
/// other direction) and the queue of messages waiting to be written.
#[derive(Default)]
pub struct Subscriber {
    /// Encoded messages not yet handed to the connection.
    queue: Mutex<Vec<u8>>,
    /// Bytes queued or being written: what the output limit applies to.
    pending: AtomicUsize,
    /// When the soft limit was first exceeded (ms), 0 when under it.
    soft_since_ms: AtomicI64,
    /// Told when messages are queued.
    pub ready: Notify,
    /// Names per kind with the order they were subscribed in, for the
    /// unsubscribe-all replies.
    names: Mutex<[HashMap<Vec<u8>, u64>; 3]>,
    next_seq: AtomicU64,
    counts: [AtomicUsize; 3],
}

impl Subscriber {
    pub fn count(&self, kind: Kind) -> usize {
        self.counts[kind.index()].load(Relaxed)
    }

    /// Channels plus patterns: the count subscribe replies carry (shard
    /// channels are counted apart, as in Redis 7.0).
    pub fn classic_count(&self) -> usize {
        self.count(Kind::Channel) + self.count(Kind::Pattern)
    }

    /// Whether the client is in subscriber mode (any subscription).
    pub fn active(&self) -> bool {
        Kind::ALL.iter().any(|k| self.count(*k) > 0)
    }

    /// Whether messages wait to be written.
    pub fn has_pending(&self) -> bool {
        self.pending.load(Relaxed) > 0
    }

    /// Moves every queued message to the end of `out` and returns how
    /// many bytes that was; hand the count back with
    /// [`written`](Self::written) once they are out. Into an empty `out`
    /// the buffers trade places, so neither side allocates again for the
    /// next message.
    pub fn drain_into(&self, out: &mut Vec<u8>) -> usize {
        let mut q = self.queue.lock();
        let n = q.len();
        if out.is_empty() {
            std::mem::swap(&mut *q, out);
        } else {
            out.extend_from_slice(&q);
            q.clear();
        }
        n
    }

    /// Drops every queued message (the client is going).
    fn discard(&self) {
        let dropped = std::mem::take(&mut *self.queue.lock()).len();
        self.written(dropped);
    }

    pub fn written(&self, n: usize) {
        self.pending.fetch_sub(n, Relaxed);
    }

    /// The reply count after a change of `kind`.
    fn reply_count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.count(Kind::Shard),
            _ => self.classic_count(),
        }
    }
}

/// `client-output-buffer-limit` for the pubsub class, in bytes and seconds
/// (0 disables a limit).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// A channel's subscribers in subscription order (the order messages go
/// out in), each with its client id beside it: unsubscribing searches the
/// ids without touching every client's memory, which made 10,000
/// subscribers leaving take a minute.
type Subscribers = Vec<(u64, Arc<ClientShared>)>;

/// Every subscription of the server.
#[derive(Default)]
pub struct PubSub {
    maps: [RwLock<HashMap<Vec<u8>, Subscribers>>; 3],
    /// Subscriptions of any kind, so notifications cost nothing when
    /// nobody listens.
    total: AtomicUsize,
}

/// The RESP2 frame of a message; RESP3 differs only in its first byte.
fn frame(kind: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut r = Reply::new(ferrokv_resp::Protocol::Resp2);
    r.array(parts.len() + 1);
    r.bulk(kind);
    for p in parts {
        r.bulk(p);
    }
    r.buf
}

impl PubSub {
    /// Number of channels (or patterns, or shard channels) with at least
    /// one subscriber: INFO's pubsub_channels and PUBSUB NUMPAT.
    pub fn len(&self, kind: Kind) -> usize {
        self.maps[kind.index()].read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.total.load(Relaxed) == 0
    }

    /// Subscribes `client` to `name`; the confirmation (with the client's
    /// count after it) goes into `reply`.
    pub fn subscribe(
        &self,
        client: &Arc<ClientShared>,
        kind: Kind,
        name: &[u8],
        reply: &mut Reply,
    ) {
        let sub = &client.pubsub;
        let added = {
            let mut names = sub.names.lock();
            let set = &mut names[kind.index()];
            if set.contains_key(name) {
                false
            } else {
                set.insert(name.to_vec(), sub.next_seq.fetch_add(1, Relaxed));
                sub.counts[kind.index()].fetch_add(1, Relaxed);
                true
            }
        };
        if added {
            self.maps[kind.index()]
                .write()
                .entry(name.to_vec())
                .or_default()
                .push((client.id, client.clone()));
            self.total.fetch_add(1, Relaxed);
        }
        confirm(
            reply,
            kind.subscribe_name(),
            Some(name),
            sub.reply_count(kind),
        );
    }

    /// Unsubscribes `client` from `names`, or from every name of `kind`
    /// when `names` is empty, with one confirmation each (one with a nil
    /// name when there was nothing to leave). Without a reply buffer it is
    /// silent (RESET, disconnect).
    pub fn unsubscribe(
        &self,
        client: &ClientShared,
        kind: Kind,
        names: &[&[u8]],
        mut reply: Option<&mut Reply>,
    ) {
        let sub = &client.pubsub;
        let all: Vec<Vec<u8>>;
        let names: Vec<&[u8]> = if names.is_empty() {
            let mut held: Vec<(Vec<u8>, u64)> = sub.names.lock()[kind.index()]
                .iter()
                .map(|(n, s)| (n.clone(), *s))
                .collect();
            held.sort_by_key(|(_, s)| *s);
            all = held.into_iter().map(|(n, _)| n).collect();
            all.iter().map(|n| n.as_slice()).collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            if let Some(r) = reply.as_deref_mut() {
                confirm(r, kind.unsubscribe_name(), None, sub.reply_count(kind));
            }
            return;
        }
        for name in names {
            let removed = sub.names.lock()[kind.index()].remove(name).is_some();
            if removed {
                sub.counts[kind.index()].fetch_sub(1, Relaxed);
                self.remove(kind, name, client.id);
            }
            if let Some(r) = reply.as_deref_mut() {
                confirm(
                    r,
                    kind.unsubscribe_name(),
                    Some(name),
                    sub.reply_count(kind),
                );
            }
        }
    }

    fn remove(&self, kind: Kind, name: &[u8], id: u64) {
        let mut map = self.maps[kind.index()].write();
        if let Some(list) = map.get_mut(name) {
            if let Some(pos) = list.iter().position(|(c, _)| *c == id) {
                list.remove(pos);
                self.total.fetch_sub(1, Relaxed);
            }
            if list.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Drops every subscription of a client (RESET, disconnect) and what
    /// it had not received yet.
    pub fn forget(&self, client: &ClientShared) {
        for kind in Kind::ALL {
            if client.pubsub.count(kind) > 0 {
                self.unsubscribe(client, kind, &[], None);
            }
        }
        client.pubsub.discard();
    }

    /// Publishes `message` on `channel` (a shard channel when `kind` is
    /// Shard): to its subscribers, then (for classic channels) to every
    /// matching pattern's. Returns how many received it. `me` is the
    /// publishing client and its reply buffer, for delivery to itself.
    pub fn publish(
        &self,
        kind: Kind,
        channel: &[u8],
        message: &[u8],
        limits: Limits,
        mut me: Option<(u64, &mut Reply)>,
    ) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut receivers = 0;
        {
            let map = self.maps[kind.index()].read();
            if let Some(list) = map.get(channel) {
                let name: &[u8] = if kind == Kind::Shard {
                    b"smessage"
                } else {
                    b"message"
                };
                let f = frame(name, &[channel, message]);
                for (_, c) in list {
                    deliver(c, &f, limits, me.as_mut());
                }
                receivers += list.len();
            }
        }
        if kind == Kind::Channel {
            let patterns = self.maps[Kind::Pattern.index()].read();
            for (pattern, list) in patterns.iter() {
                if !crate::glob::matches(pattern, channel, false) {
                    continue;
                }
                let f = frame(b"pmessage", &[pattern, channel, message]);
                for (_, c) in list {
                    deliver(c, &f, limits, me.as_mut());
                }
                receivers += list.len();
            }
        }
        receivers
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: names with subscribers, optionally
    /// matching a glob pattern.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.maps[kind.index()]
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of one name.
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.maps[kind.index()]
            .read()
            .get(channel)
            .map_or(0, |l| l.len())
    }
}

/// A (p|s)(un)subscribe confirmation: `[kind, name or nil, count]`.
fn confirm(reply: &mut Reply, what: &[u8], name: Option<&[u8]>, count: usize) {
    reply.push(3);
    reply.bulk(what);
    match name {
        Some(n) => reply.bulk(n),
        None => reply.null(),
    }
    reply.int(count as i64);
}

/// Queues one message for one subscriber, in its protocol, or writes it
/// into the publisher's own reply when the subscriber is the publisher.
/// A subscriber over its output limit is disconnected and its queue
/// dropped.
fn deliver(
    c: &Arc<ClientShared>,
    frame: &[u8],
    limits: Limits,
    me: Option<&mut (u64, &mut Reply)>,
) {
    let resp3 = c.resp.load(Relaxed) == 3;
    if let Some((id, reply)) = me {
        if *id == c.id {
            let at = reply.buf.len();
            reply.buf.extend_from_slice(frame);
            if reply.is_resp3() {
                reply.buf[at] = b'>';
            }
            return;
        }
    }
    if c.killed.load(Relaxed) {
        return;
    }
    let sub = &c.pubsub;
    let (pending, first) = {
        let mut q = sub.queue.lock();
        let at = q.len();
        q.extend_from_slice(frame);
        if resp3 {
            q[at] = b'>';
        }
        // Counted under the queue's lock, so whoever takes these bytes
        // (and then subtracts them) finds them counted already.
        let pending = (sub.pending.fetch_add(frame.len(), Relaxed) + frame.len()) as u64;
        (pending, at == 0)
    };
    if over_limit(sub, pending, limits) {
        tracing::warn!(
            "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
            c.id,
            c.addr
        );
        sub.discard();
        c.kill();
        return;
    }
    // Whoever queued the first of these messages has told the connection
    // already, or left it to its loop (Notify keeps the permit until the
    // connection looks), and it takes the whole queue when it does: one
    // wake-up per batch, not per message.
    if first {
        wake(c);
    }
}

/// The subscribers an event loop's publishers queued for during its pass,
/// and how to tell the loop there are some.
type Later = (Vec<Arc<ClientShared>>, Arc<Notify>);

thread_local! {
    /// Set on event loops (see [`WakeLater`]).
    static LATER: RefCell<Option<Later>> = const { RefCell::new(None) };
}

/// Wakes `c`'s connection, at the end of this event loop's pass when
/// called on one.
fn wake(c: &Arc<ClientShared>) {
    let deferred = LATER.with_borrow_mut(|later| match later {
        Some((list, pass_done)) => {
            if list.is_empty() {
                pass_done.notify_one();
            }
            list.push(c.clone());
            true
        }
        None => false,
    });
    if !deferred {
        c.pubsub.ready.notify_one();
    }
}

/// An event loop's end of the deferred wake-ups: while it lives, the
/// loop's thread leaves subscribers' wake-ups to it. The loop waits on
/// [`ready`](Self::ready) beside its connections' tasks, so it gets to
/// run after the tasks that were ready when the first wake-up was left,
/// then calls [`wake_all`](Self::wake_all). Dropping it wakes what is
/// left and stops the deferral.
pub struct WakeLater {
    pass_done: Arc<Notify>,
}

impl WakeLater {
    /// Starts deferring on this thread.
    pub fn install() -> WakeLater {
        let pass_done = Arc::new(Notify::new());
        LATER.set(Some((Vec::new(), pass_done.clone())));
        WakeLater { pass_done }
    }

    /// Resolves once wake-ups have been left.
    pub async fn ready(&self) {
        self.pass_done.notified().await
    }

    pub fn wake_all(&self) {
        // Taken out first: nothing may find the list borrowed meanwhile.
        let mut list = LATER
            .with_borrow_mut(|later| later.as_mut().map(|(list, _)| std::mem::take(list)))
            .unwrap_or_default();
        for c in list.drain(..) {
            c.pubsub.ready.notify_one();
        }
        // The allocation goes back for the next pass.
        LATER.with_borrow_mut(|later| {
            if let Some((kept, _)) = later {
                if kept.is_empty() {
                    *kept = list;
                }
            }
        });
    }
}

impl Drop for WakeLater {
    fn drop(&mut self) {
        self.wake_all();
        LATER.set(None);
    }
}

/// Redis's checkClientOutputBufferLimits: over the hard limit, or over the
/// soft limit for longer than its seconds.
fn over_limit(sub: &Subscriber, pending: u64, limits: Limits) -> bool {
    if limits.hard > 0 && pending >= limits.hard {
        return true;
    }
    if limits.soft > 0 && pending >= limits.soft {
        let now = crate::now_ms();
        let since = sub.soft_since_ms.load(Relaxed);
        if since == 0 {
            sub.soft_since_ms.store(now, Relaxed);
            return false;
        }
        return (now - since) as u64 > limits.soft_secs * 1000;
    }
    sub.soft_since_ms.store(0, Relaxed);
    false
}

/// Keyspace notification classes: the letters of `notify-keyspace-events`.
pub mod events {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 13;
    /// What `A` stands for (not `m` nor `n`).
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Parses the flag letters; None for a letter Redis does not know.
    pub fn parse(s: &str) -> Option<u32> {
        let mut flags = 0;
        for c in s.chars() {
            flags |= match c {
                'A' => ALL,
                'g' => GENERIC,
                '$' => STRING,
                'l' => LIST,
                's' => SET,
                'h' => HASH,
                'z' => ZSET,
                'x' => EXPIRED,
                'e' => EVICTED,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                't' => STREAM,
                'm' => KEY_MISS,
                'd' => MODULE,
                'n' => NEW,
                _ => return None,
            };
        }
        Some(flags)
    }

    /// The letters in a form that keeps every flag: as
    /// [`render`]ed, plus `n` when `A` hid it.
    pub fn canonical(flags: u32) -> String {
        let mut s = render(flags);
        if flags & ALL == ALL && flags & NEW != 0 {
            s.push('n');
        }
        s
    }

    /// The letters as CONFIG GET shows them (Redis's
    /// keyspaceEventsFlagsToString: `A` swallows the classes it covers,
    /// and `n` with it).
    pub fn render(flags: u32) -> String {
        let mut s = String::new();
        if flags & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if flags & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
        s
    }
}

impl PubSub {
    /// Redis's notifyKeyspaceEvent: when `class` is enabled in `flags`,
    /// publishes `event` on `__keyspace@<db>__:<key>` and `key` on
    /// `__keyevent@<db>__:<event>`, as the K and E flags ask.
    #[allow(clippy::too_many_arguments)]
    pub fn keyspace_event(
        &self,
        flags: u32,
        limits: Limits,
        class: u32,
        db: usize,
        event: &str,
        key: &[u8],
        mut me: Option<(u64, &mut Reply)>,
    ) {
        if flags & class == 0 || self.is_empty() {
            return;
        }
        if flags & events::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            let me = me.as_mut().map(|(id, r)| (*id, &mut **r));
            self.publish(Kind::Channel, &channel, event.as_bytes(), limits, me);
        }
        if flags & events::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(Kind::Channel, channel.as_bytes(), key, limits, me);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::events::*;

    #[test]
    fn flags_render_as_redis() {
        let r = |s: &str| render(parse(s).unwrap());
        assert_eq!(r("KEA"), "AKE");
        assert_eq!(r("An"), "A");
        assert_eq!(r("Kn"), "nK");
        assert_eq!(r("g$lshzxetd"), "A");
        assert_eq!(r("Egx"), "gxE");
        assert_eq!(r("KEAmn"), "AKEm");
        assert_eq!(r(""), "");
        assert!(parse("Q").is_none());
        assert_eq!(parse(&canonical(parse("An").unwrap())), parse("An"));
    }
}
