//! Wait queues for blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREAD
//! BLOCK, ...).
//!
//! A blocking command that finds nothing to do registers a [`Waiter`] on
//! its keys *while it still holds their shard locks*, so no write can slip
//! between its check and its registration. Every write goes through the
//! write hook, which marks a key with waiters as ready. After the writing
//! command has finished and released its locks, the writer serves the
//! ready keys itself: it re-runs each waiting command, oldest first, on
//! behalf of its client and hands the reply over a channel. This gives
//! Redis's semantics: waiters are served in FIFO order, a client blocked
//! on several keys takes the first one that is ready, and a push made by a
//! MULTI/EXEC or a script is served once the whole unit has run.
//!
//! A waiter leaves the queues when it is served, times out, is unblocked
//! (CLIENT UNBLOCK) or its connection goes; `blocked_clients` counts what
//! is left.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use ferrokv_resp::Protocol;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::client::ClientShared;

/// What a blocked client receives when its wait ends.
#[derive(Debug)]
pub enum Wake {
    /// Its command ran; these are the reply bytes, in its protocol.
    Served(Vec<u8>),
    /// CLIENT UNBLOCK ... TIMEOUT: reply as if the timeout had passed.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR.
    Error,
}

/// The reply a blocking command gives when its timeout passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` in RESP2 (BLPOP, BZPOPMIN, BLMPOP, XREAD ...).
    NullArray,
    /// `$-1` in RESP2 (BLMOVE, BRPOPLPUSH).
    NullBulk,
}

/// A client waiting on keys.
pub struct Waiter {
    pub client: Arc<ClientShared>,
    pub db: usize,
    pub keys: Vec<Vec<u8>>,
    /// The command to run again when a key is ready.
    pub argv: Vec<Vec<u8>>,
    pub proto: Protocol,
    tx: Mutex<Option<oneshot::Sender<Wake>>>,
}

#[derive(Default)]
struct Inner {
    /// Waiting client ids per (db, key), oldest first.
    queues: HashMap<(usize, Vec<u8>), VecDeque<u64>>,
    waiters: HashMap<u64, Arc<Waiter>>,
    /// Keys signalled since the last serve, in signal order.
    ready: Vec<(usize, Vec<u8>)>,
}

/// The wait queues of the whole server.
#[derive(Default)]
pub struct Blocking {
    inner: Mutex<Inner>,
    /// Lets the write hook skip the lock when nobody waits.
    count: AtomicUsize,
    /// Keys are pending in `ready`.
    pending: AtomicUsize,
}

impl Blocking {
    /// Number of blocked clients (INFO's `blocked_clients`).
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a waiter; the returned receiver yields how the wait ended.
    pub fn register(
        &self,
        client: Arc<ClientShared>,
        db: usize,
        keys: Vec<Vec<u8>>,
        argv: Vec<Vec<u8>>,
        proto: Protocol,
    ) -> oneshot::Receiver<Wake> {
        let (tx, rx) = oneshot::channel();
        let id = client.id;
        let waiter = Arc::new(Waiter {
            client,
            db,
            keys,
            argv,
            proto,
            tx: Mutex::new(Some(tx)),
        });
        let mut inner = self.inner.lock();
        for key in &waiter.keys {
            let q = inner.queues.entry((db, key.clone())).or_default();
            if !q.contains(&id) {
                q.push_back(id);
            }
        }
        if inner.waiters.insert(id, waiter).is_none() {
            self.count.fetch_add(1, Relaxed);
        }
        rx
    }

    /// The write hook's part: a key changed, so its waiters may be served.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.count.load(Relaxed) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let k = (db, key.to_vec());
        if inner.queues.contains_key(&k) && !inner.ready.contains(&k) {
            inner.ready.push(k);
            self.pending.fetch_add(1, Relaxed);
        }
    }

    /// Keys signalled since the last call, for the writer to serve.
    pub fn take_ready(&self) -> Vec<(usize, Vec<u8>)> {
        if self.pending.load(Relaxed) == 0 {
            return Vec::new();
        }
        let mut inner = self.inner.lock();
        self.pending.store(0, Relaxed);
        std::mem::take(&mut inner.ready)
    }

    /// The waiters of a key, oldest first.
    pub fn waiters_of(&self, db: usize, key: &[u8]) -> Vec<Arc<Waiter>> {
        let inner = self.inner.lock();
        inner
            .queues
            .get(&(db, key.to_vec()))
            .map(|q| {
                q.iter()
                    .filter_map(|id| inner.waiters.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes a waiter out of the queues (its wait is over, one way or another).
    fn unlink(&self, waiter: &Waiter) {
        let id = waiter.client.id;
        let mut inner = self.inner.lock();
        if inner.waiters.remove(&id).is_none() {
            return;
        }
        self.count.fetch_sub(1, Relaxed);
        for key in &waiter.keys {
            let k = (waiter.db, key.clone());
            if let Some(q) = inner.queues.get_mut(&k) {
                q.retain(|w| *w != id);
                if q.is_empty() {
                    inner.queues.remove(&k);
                }
            }
        }
    }

    fn get(&self, id: u64) -> Option<Arc<Waiter>> {
        self.inner.lock().waiters.get(&id).cloned()
    }

    /// Runs `attempt` for a waiter while no one else can end its wait; when
    /// it returns reply bytes the waiter is served. The waiter's lock is held
    /// across the attempt so that a timeout cannot race with a pop: either
    /// the command ran and the client gets its reply, or it did not run.
    pub fn try_serve(&self, waiter: &Waiter, attempt: impl FnOnce() -> Option<Vec<u8>>) -> bool {
        let mut tx = waiter.tx.lock();
        if tx.is_none() {
            return false;
        }
        let Some(reply) = attempt() else {
            return false;
        };
        let sender = tx.take();
        drop(tx);
        self.unlink(waiter);
        if let Some(sender) = sender {
            let _ = sender.send(Wake::Served(reply));
        }
        true
    }

    /// Ends a wait by delivering `wake` (CLIENT UNBLOCK). False when the
    /// client was not blocked or has just been served.
    pub fn finish(&self, id: u64, wake: Wake) -> bool {
        let Some(waiter) = self.get(id) else {
            return false;
        };
        let Some(sender) = waiter.tx.lock().take() else {
            return false;
        };
        self.unlink(&waiter);
        let _ = sender.send(wake);
        true
    }

    /// Drops a waiter whose client stopped waiting (timeout, disconnect,
    /// kill). Returns false when it had been served or unblocked meanwhile,
    /// in which case its channel holds the outcome.
    pub fn cancel(&self, id: u64) -> bool {
        let Some(waiter) = self.get(id) else {
            return false;
        };
        if waiter.tx.lock().take().is_none() {
            return false;
        }
        self.unlink(&waiter);
        true
    }
}
