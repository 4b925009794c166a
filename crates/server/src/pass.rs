//! The end of an event-loop pass, Redis's `beforeSleep`: the replies a
//! pass produced go out there, after the records of their commands have
//! reached the AOF (and the disk, with `appendfsync always`).
//!
//! A connection that has run its requests and will next wait for input
//! leaves its replies in its [`Outbox`] instead of writing them. When the
//! loop has no ready task left, just before it sleeps in the poller, the
//! runtime calls [`end_of_pass`], which writes every outbox the pass
//! filled. A client with many connections at pipeline depth 1 then finds
//! the replies of a whole pass ready when it wakes, as it does with Redis,
//! instead of one reply per wake-up; the server makes the same system
//! calls either way. Writing the AOF there too spares each connection a
//! trip through the scheduler to let the others of its pass buffer their
//! records first.
//!
//! What a socket does not take at once stays in the outbox, and the
//! connection writes it itself, waiting for the socket, before it reads
//! more requests: the back-pressure of a direct write.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::client::ClientShared;
use crate::Server;

/// Output buffers larger than this are released once written, so one
/// large reply does not pin memory for the life of a connection.
pub const KEEP_OUTPUT: usize = 1024 * 1024;
/// What a released output buffer keeps.
const SHRUNK_OUTPUT: usize = 16 * 1024;

thread_local! {
    /// Whether this thread's runtime calls [`end_of_pass`].
    static HOOKED: Cell<bool> = const { Cell::new(false) };
    /// The outboxes filled in this pass, on a thread serving an event loop.
    static PASS: RefCell<Option<Pass>> = const { RefCell::new(None) };
}

struct Pass {
    server: Arc<Server>,
    /// The loop's index, when it measures its parked time (crate::scale).
    metered: Option<usize>,
    filled: Vec<Arc<Shared>>,
    /// The AOF ticket every filled outbox's replies wait for.
    aof_upto: u64,
}

/// An event loop's runtime: single-threaded, timers and I/O enabled,
/// calling [`end_of_pass`] before it sleeps. Must be built on the thread
/// that runs it: only there can its loop leave replies for later.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(end_of_pass)
        .on_thread_unpark(unparked)
        .build()?;
    HOOKED.set(true);
    Ok(rt)
}

/// While it lives, connections on this thread leave their replies for the
/// end of the pass, provided the thread's runtime comes from [`runtime`];
/// elsewhere they keep writing at once. Dropping it writes nothing more:
/// the loop's connections are gone by then.
pub struct Serving(());

impl Serving {
    /// For event loop `index`.
    pub fn start(server: Arc<Server>, index: usize) -> Serving {
        if HOOKED.get() {
            let metered = server.scaling.metered(index).then_some(index);
            PASS.set(Some(Pass {
                server,
                metered,
                filled: Vec::new(),
                aof_upto: 0,
            }));
        }
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        PASS.set(None);
    }
}

/// Called by the runtime when it has no ready task left: writes the AOF
/// records, then the outboxes, of the pass.
fn end_of_pass() {
    let taken = PASS.with_borrow_mut(|pass| {
        let pass = pass.as_mut()?;
        if pass.filled.is_empty() && pass.aof_upto == 0 {
            if let Some(index) = pass.metered {
                pass.server.scaling.parked(index);
            }
            return None;
        }
        let upto = std::mem::take(&mut pass.aof_upto);
        let filled = std::mem::take(&mut pass.filled);
        Some((pass.server.clone(), filled, upto, pass.metered))
    });
    let Some((server, mut filled, aof_upto, metered)) = taken else {
        return;
    };
    crate::persist::aof::settle(&server, aof_upto);
    for shared in filled.drain(..) {
        shared.send(&server);
    }
    // The list's allocation goes back for the next pass.
    PASS.with_borrow_mut(|pass| {
        if let Some(pass) = pass {
            if pass.filled.is_empty() {
                pass.filled = filled;
            }
        }
    });
    if let Some(index) = metered {
        server.scaling.parked(index);
    }
}

/// Called by the runtime when it is back from the poller.
fn unparked() {
    PASS.with_borrow(|pass| {
        if let Some(Pass {
            server,
            metered: Some(index),
            ..
        }) = pass
        {
            server.scaling.unparked(*index);
        }
    });
}

/// A connection's replies waiting for the end of the pass. Lives while its
/// connection is served on one loop; the socket stays open while it lives.
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    fd: RawFd,
    client: Arc<ClientShared>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// In the pass's list.
    queued: bool,
    /// The connection has stopped serving on this loop: the descriptor may
    /// be closed or elsewhere.
    closed: bool,
    /// The socket did not take everything: the connection writes the rest.
    stuck: bool,
    /// The socket failed: the connection is to close.
    failed: bool,
}

/// What the end of a pass asks of a connection.
pub enum Needs {
    /// Write what the socket did not take.
    Write,
    /// Close: the socket failed.
    Close,
}

impl Outbox {
    pub fn new(stream: &TcpStream, client: Arc<ClientShared>) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                fd: stream.as_raw_fd(),
                client,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Leaves `reply` (possibly empty) for the end of the pass, which
    /// first has the AOF take records up to `aof_ticket`; `reply` is left
    /// empty. False, with `reply` untouched, when the caller must write:
    /// this thread does not serve a loop, or the outbox holds what the
    /// socket did not take.
    pub fn defer(&self, reply: &mut Vec<u8>, aof_ticket: u64) -> bool {
        PASS.with_borrow_mut(|pass| {
            let Some(pass) = pass else {
                return false;
            };
            let mut st = self.shared.state.lock();
            if st.stuck || st.failed {
                return false;
            }
            pass.aof_upto = pass.aof_upto.max(aof_ticket);
            if reply.is_empty() {
                return true;
            }
            if st.buf.is_empty() {
                // The buffers trade places: no copy, and the connection
                // keeps an allocation for its next replies.
                std::mem::swap(&mut st.buf, reply);
            } else {
                st.buf.extend_from_slice(reply);
                reply.clear();
            }
            if !st.queued {
                st.queued = true;
                pass.filled.push(self.shared.clone());
            }
            true
        })
    }

    /// Everything still waiting, for the connection to write before
    /// anything else; the outbox is left empty.
    pub fn take(&self) -> Vec<u8> {
        let mut st = self.shared.state.lock();
        st.stuck = false;
        std::mem::take(&mut st.buf)
    }

    /// What the end of a pass left to the connection, if anything. The end
    /// of a pass wakes the client's `attention` when it leaves something.
    pub fn needs(&self) -> Option<Needs> {
        let st = self.shared.state.lock();
        if st.failed {
            Some(Needs::Close)
        } else if st.stuck {
            Some(Needs::Write)
        } else {
            None
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
    }
}

impl Shared {
    /// Writes what the socket takes without waiting.
    fn send(&self, server: &Server) {
        let mut st = self.state.lock();
        st.queued = false;
        if st.closed || st.failed || st.buf.is_empty() {
            return;
        }
        let mut done = 0;
        while done < st.buf.len() {
            let rest = &st.buf[done..];
            // SAFETY: `fd` is the connection's open socket: its task marks
            // the outbox closed before the socket can close or move, and
            // that cannot happen while this loop's thread runs this.
            let n = unsafe {
                libc::send(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                done += n as usize;
                continue;
            }
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => st.stuck = true,
                _ => st.failed = true,
            }
            break;
        }
        server.stats.writes_processed.add(1);
        server.stats.net_output_bytes.add(done as u64);
        if done == st.buf.len() {
            st.buf.clear();
            if st.buf.capacity() > KEEP_OUTPUT {
                st.buf.shrink_to(SHRUNK_OUTPUT);
            }
        } else {
            st.buf.drain(..done);
            drop(st);
            self.client.attention.wake();
        }
    }
}
