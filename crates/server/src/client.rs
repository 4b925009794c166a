//! Client state: what a connection task owns ([`Client`]) and what other
//! clients may read or signal through the registry ([`ClientShared`]:
//! CLIENT LIST, CLIENT KILL, CLIENT PAUSE).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};
use std::sync::Arc;
use std::time::Instant;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::sync::Notify;

use crate::command::Resolved;

/// The part of a client visible to others.
pub struct ClientShared {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    name: Mutex<Vec<u8>>,
    pub db: AtomicUsize,
    pub last_interaction_ms: AtomicI64,
    /// Statistics id of the last command, or usize::MAX before the first.
    pub last_cmd: AtomicUsize,
    pub resp: AtomicU8,
    pub no_evict: AtomicBool,
    pub killed: AtomicBool,
    /// Wakes the connection task so it notices `killed` or the server's
    /// shutdown. A waker slot rather than a Notify: the task polls it
    /// with every read, and re-registering a waker here costs a few
    /// atomic operations where a Notify takes its mutex twice.
    pub attention: AtomicWaker,
    /// Subscriptions and the messages waiting to be written.
    pub pubsub: crate::pubsub::Subscriber,
}

impl ClientShared {
    pub fn name(&self) -> Vec<u8> {
        self.name.lock().clone()
    }

    pub fn set_name(&self, name: &[u8]) {
        *self.name.lock() = name.to_vec();
    }

    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.attention.wake();
    }
}

/// The part of a client owned by its connection task.
pub struct Client {
    pub shared: Arc<ClientShared>,
    pub db: usize,
    pub authenticated: bool,
    /// CLIENT REPLY OFF.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP: suppress the next command's reply.
    pub skip_next: bool,
    /// Set by a blocking command that registered a wait.
    pub wait: Option<tokio::sync::oneshot::Receiver<crate::blocking::Wake>>,
    /// Commands queued since MULTI.
    pub multi: Option<Multi>,
    /// Keys watched with WATCH, and whether one of them has changed.
    pub watched: Vec<(usize, Vec<u8>)>,
    pub cas_dirty: Arc<AtomicBool>,
    /// The event loop's gate (see crate::gate).
    pub gate: usize,
    /// The loop the connection was first dealt to, and how often its
    /// recent commands took the exclusive gate: together they decide when
    /// the connection moves between loops (crate::net::Loops::destination).
    pub home: usize,
    pub mix: GateMix,
    /// One past the highest AOF ticket of this client's writes: its
    /// replies wait until the AOF has them (persist::aof::before_reply).
    pub aof_ticket: u64,
    /// Writes of the running EXEC or script, propagated together by it.
    pub propagated: Vec<crate::persist::aof::Propagated>,
    /// The last transaction's queue, emptied: the next MULTI reuses its
    /// buffers instead of growing new ones.
    pub spare_queue: Queued,
}

/// How many of a client's last commands would rather run on the loop
/// where such commands gather (crate::net::gathers: those under the
/// exclusive gate, and writes under `appendfsync always`), counted in
/// windows of [`GateMix::WINDOW`] commands.
#[derive(Default)]
pub struct GateMix {
    commands: u16,
    gathering: u16,
}

impl GateMix {
    pub const WINDOW: u16 = 64;

    pub fn note(&mut self, gathers: bool) {
        self.commands += 1;
        self.gathering += u16::from(gathers);
    }

    /// Once a window is full: how many of its commands gather, and a fresh
    /// window.
    pub fn take_window(&mut self) -> Option<u16> {
        if self.commands < Self::WINDOW {
            return None;
        }
        let gathering = self.gathering;
        *self = GateMix::default();
        Some(gathering)
    }
}

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    pub commands: Queued,
    /// A command was rejected while queueing: EXEC will fail.
    pub aborted: bool,
    /// A queued command does not let EXEC lock just its keys
    /// (crate::command::transactions::note_queued): EXEC takes the
    /// exclusive gate.
    pub unkeyed: bool,
    /// The (database, shard) pairs of the queued commands' keys, while none
    /// is unkeyed.
    pub shards: Vec<(usize, usize)>,
}

/// Argument bytes of a spent queue worth keeping for the next MULTI.
const QUEUE_KEEP: usize = 16 * 1024;

/// The commands queued in MULTI, resolved, with their arguments in one
/// buffer: a transaction of short commands then costs a few allocations
/// instead of one per argument.
#[derive(Default)]
pub struct Queued {
    bytes: Vec<u8>,
    /// Where each argument ends in `bytes`.
    ends: Vec<usize>,
    /// Each command and where its arguments end in `ends`.
    commands: Vec<(Resolved, usize)>,
}

impl Queued {
    pub fn push(&mut self, r: Resolved, argv: &[&[u8]]) {
        for a in argv {
            self.bytes.extend_from_slice(a);
            self.ends.push(self.bytes.len());
        }
        self.commands.push((r, self.ends.len()));
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Empties the queue for reuse; None when it grew too large to keep.
    pub fn emptied(mut self) -> Option<Queued> {
        if self.bytes.capacity() > QUEUE_KEEP {
            return None;
        }
        self.bytes.clear();
        self.ends.clear();
        self.commands.clear();
        Some(self)
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Each command with its arguments, in queueing order.
    pub fn iter(&self) -> impl Iterator<Item = (&Resolved, SmallVec<[&[u8]; 8]>)> + '_ {
        let mut first_arg = 0;
        self.commands.iter().map(move |(r, end)| {
            let mut start = if first_arg == 0 {
                0
            } else {
                self.ends[first_arg - 1]
            };
            let argv = self.ends[first_arg..*end]
                .iter()
                .map(|&stop| {
                    let arg = &self.bytes[start..stop];
                    start = stop;
                    arg
                })
                .collect();
            first_arg = *end;
            (r, argv)
        })
    }
}

impl Client {
    /// A stand-in for a blocked client, used to run its command on its
    /// behalf when a key it waits on becomes ready.
    pub fn on_behalf_of(shared: Arc<ClientShared>, db: usize) -> Client {
        Client {
            shared,
            db,
            authenticated: true,
            reply_off: false,
            skip_next: false,
            wait: None,
            multi: None,
            watched: Vec::new(),
            cas_dirty: Arc::new(AtomicBool::new(false)),
            gate: 0,
            home: 0,
            mix: GateMix::default(),
            aof_ticket: 0,
            propagated: Vec::new(),
            spare_queue: Queued::default(),
        }
    }

    /// Drops every WATCH (UNWATCH, EXEC, DISCARD, RESET, disconnect).
    pub fn unwatch_all(&mut self, server: &crate::Server) {
        server.watches.unwatch(self.shared.id, &self.watched);
        self.watched.clear();
        self.cas_dirty.store(false, Relaxed);
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.shared.db.store(db, Relaxed);
    }
}

/// Which commands CLIENT PAUSE holds back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseMode {
    All,
    Write,
}

/// All connected clients, and the CLIENT PAUSE state.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientShared>>>,
    next_id: AtomicU64,
    pause: Mutex<Option<(PauseMode, i64)>>,
    /// Whether `pause` may hold a pause: every command checks it, so the
    /// check must not take a lock shared by all event loops.
    pausing: AtomicBool,
    pub unpaused: Notify,
}

impl Registry {
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr, requirepass: bool) -> Client {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let shared = Arc::new(ClientShared {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(Vec::new()),
            db: AtomicUsize::new(0),
            last_interaction_ms: AtomicI64::new(crate::now_ms()),
            last_cmd: AtomicUsize::new(usize::MAX),
            resp: AtomicU8::new(2),
            no_evict: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            attention: AtomicWaker::new(),
            pubsub: Default::default(),
        });
        self.clients.lock().insert(id, shared.clone());
        Client {
            shared,
            db: 0,
            authenticated: !requirepass,
            reply_off: false,
            skip_next: false,
            wait: None,
            multi: None,
            watched: Vec::new(),
            cas_dirty: Arc::new(AtomicBool::new(false)),
            gate: 0,
            home: 0,
            mix: GateMix::default(),
            aof_ticket: 0,
            propagated: Vec::new(),
            spare_queue: Queued::default(),
        }
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the connected clients, in id order.
    pub fn all(&self) -> Vec<Arc<ClientShared>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn pause(&self, mode: PauseMode, until_ms: i64) {
        let mut p = self.pause.lock();
        // A new pause never shortens or weakens a running one (as Redis).
        let mode = match *p {
            Some((PauseMode::All, end)) if end > crate::now_ms() => PauseMode::All,
            _ => mode,
        };
        let until = p.map(|(_, end)| end.max(until_ms)).unwrap_or(until_ms);
        *p = Some((mode, until));
        self.pausing.store(true, Relaxed);
    }

    pub fn unpause(&self) {
        *self.pause.lock() = None;
        self.pausing.store(false, Relaxed);
        self.unpaused.notify_waiters();
    }

    /// When a command with `write` semantics (or any, for pause ALL) must
    /// wait: the pause's end in ms, or None.
    pub fn paused_until(&self, write: bool) -> Option<i64> {
        if !self.pausing.load(Relaxed) {
            return None;
        }
        let mut p = self.pause.lock();
        match *p {
            Some((_, end)) if end <= crate::now_ms() => {
                *p = None;
                self.pausing.store(false, Relaxed);
                None
            }
            Some((PauseMode::All, end)) => Some(end),
            Some((PauseMode::Write, end)) if write => Some(end),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandTable;

    #[test]
    fn queued_commands_come_back_whole_and_in_order() {
        let table = CommandTable::new();
        let commands: [&[&[u8]]; 4] = [
            &[b"SET", b"k", b""],
            &[b"PING"],
            &[b"MSET", b"a", b"1", b"", b"", b"c", b"33"],
            &[b"GET", b"k"],
        ];
        let mut queued = Queued::default();
        assert!(queued.is_empty());
        for argv in commands {
            let r = table
                .resolve(argv)
                .unwrap_or_else(|e| panic!("{}", e.text()));
            queued.push(r, argv);
        }
        assert_eq!(queued.len(), 4);
        let back: Vec<(String, Vec<Vec<u8>>)> = queued
            .iter()
            .map(|(r, argv)| {
                (
                    r.full_name().into_owned(),
                    argv.iter().map(|a| a.to_vec()).collect(),
                )
            })
            .collect();
        let names = ["set", "ping", "mset", "get"];
        for ((name, argv), (want_name, want)) in back.iter().zip(names.iter().zip(commands)) {
            assert_eq!(name, want_name);
            assert_eq!(argv, &want.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        }
    }
}
