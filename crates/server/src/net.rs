//! Listeners and connection tasks.
//!
//! One task per connection reads whatever the socket has, executes every
//! complete request in the buffer, and writes all their replies with one
//! write: batching is what makes pipelined throughput. When it goes back
//! to reading, that write waits for the end of the loop's pass
//! (crate::pass), as Redis writes replies before its loop sleeps. A
//! protocol error gets Redis's reply and closes the connection after the
//! replies before it; a client over `client-query-buffer-limit` is
//! closed, as in Redis.
//! Every task ends when its client goes, is killed, or the server stops,
//! and unregisters itself on the way out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrokv_resp::{Limits, Protocol, Reply, RequestParser};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::blocking::{TimeoutReply, Wake};
use crate::client::{Client, ClientShared, GateMix};
use crate::command::{self, flags, Flow};
use crate::gate::Held;
use crate::pass::{Needs, Outbox, KEEP_OUTPUT};
use crate::Server;

const READ_CHUNK: usize = 16 * 1024;

/// Binds every `bind` address on `port`. Addresses prefixed with `-` are
/// optional, as in Redis: failing to bind them is not an error.
pub async fn bind(server: &Server) -> std::io::Result<Vec<TcpListener>> {
    let port = server.config.get_i64("port") as u16;
    let backlog = u32::try_from(server.config.get_i64("tcp-backlog")).unwrap_or(511);
    let mut listeners = Vec::new();
    for addr in server.config.get("bind").split_whitespace() {
        let (optional, addr) = match addr.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, addr),
        };
        let host = if addr == "*" { "0.0.0.0" } else { addr };
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match listen(&target, backlog).await {
            Ok(l) => {
                server.bound.lock().push(l.local_addr()?);
                listeners.push(l);
            }
            Err(e) if optional => tracing::warn!("could not bind optional address {target}: {e}"),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not bind {target}: {e}"),
                ))
            }
        }
    }
    Ok(listeners)
}

/// A listening socket on `target` (an address or a host name, with port)
/// with an accept queue of `backlog` (`tcp-backlog`, 511 as in Redis; the
/// runtime's own 128 let the queue overflow during bursts of connections:
/// the kernel then drops SYNs and each such client waits a second to
/// retry).
async fn listen(target: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Hands accepted connections to the event loops, round-robin, and moves
/// them between loops.
///
/// Each event loop is a single-threaded runtime on its own OS thread, and
/// a connection runs on one loop at a time: no work stealing, so a request
/// costs what it costs in Redis's event loop (one wake-up, one read, one
/// write), while the loops together use every core. The store is shared by
/// all loops through its shard locks.
///
/// A connection whose commands mostly take the exclusive gate (scripts,
/// unkeyed transactions) moves to loop 0, and back to the loop it was
/// dealt once they are rare. Exclusive commands never run in parallel, so
/// spreading them over the loops bought nothing: each one waited for the
/// other loops to leave the gate, parked them, and then ran on a core whose
/// caches held none of the Lua heap. Gathered on one loop, they run back
/// to back like in Redis's single thread, and the other loops only see
/// them as an uncontended gate. With two loops on two cores, EVALSHA at
/// `-P 16` cost 7.7 µs of server CPU per call spread over both loops and
/// 3.7 µs with every connection on one. The decision is taken per window
/// of [`GateMix::WINDOW`] commands, with a wide gap between the shares
/// that move a connection there (3/4) and back (1/4), so a mixed client
/// does not bounce.
///
/// Writes gather there too while `appendfsync always` is on ([`gathers`]):
/// a loop writes and fsyncs the AOF once per pass, and loops that each
/// synced their own pass took turns at the file, each fsync covering only
/// its loop's clients. With two loops, 30,000 SETs at `-c 50 -P 1` took
/// 1,063 fsyncs, against 603 on one loop and 600 in Redis.
///
/// Connections are dealt only to the loops in use (crate::scale); a
/// client whose home loop falls out of use moves to the one its home maps
/// to at its next window, whatever its mix.
///
/// One more loop, the overflow loop, runs beside the accepting task. It
/// gets the connections meant for a loop that is held by a long script
/// (see crate::scripting), so that a new client can always reach the
/// server, to SCRIPT KILL or SHUTDOWN NOSAVE.
pub struct Loops {
    senders: Vec<mpsc::UnboundedSender<Arrival>>,
    next: AtomicUsize,
}

/// What reaches an event loop.
pub enum Arrival {
    /// A new connection, and its home loop.
    Accepted(std::net::TcpStream, SocketAddr, usize),
    /// A connection moved from another loop, with everything it had.
    Moved(Box<Moved>),
}

pub struct Moved {
    stream: std::net::TcpStream,
    bufs: Buffers,
    client: Client,
}

/// What goes with a connection from loop to loop besides its socket.
struct Buffers {
    rbuf: BytesMut,
    parser: RequestParser,
    reply: Reply,
}

type Incoming = mpsc::UnboundedReceiver<Arrival>;

/// Where connections that mostly run exclusive commands gather.
const EXCLUSIVE_LOOP: usize = 0;

/// Whether a command counts towards gathering its connection on
/// [`EXCLUSIVE_LOOP`] (see [`Loops`]): it takes the exclusive gate, or it
/// writes while every write waits for an fsync.
pub fn gathers(server: &Server, r: &command::Resolved, exclusive: bool) -> bool {
    exclusive
        || (r.cmd.has(flags::WRITE)
            && server.config.fsync_always.load(Relaxed)
            && server.persist.aof.enabled())
}

impl Loops {
    /// `n` loops and the overflow loop: the dispatcher, and the receiving
    /// end for each loop, the overflow loop's last.
    pub fn new(n: usize) -> (Loops, Vec<Incoming>) {
        let (senders, receivers) = (0..n.max(1) + 1).map(|_| mpsc::unbounded_channel()).unzip();
        (
            Loops {
                senders,
                next: AtomicUsize::new(0),
            },
            receivers,
        )
    }

    fn dispatch(&self, server: &Server, stream: std::net::TcpStream, addr: SocketAddr) {
        let overflow = self.senders.len() - 1;
        let home = self.next.fetch_add(1, Relaxed) % overflow;
        let mut i = server.scaling.home(home);
        if server.scripting.busy.holds_loop(i) {
            i = overflow;
        }
        // A loop only goes away at shutdown; the connection then just closes.
        let _ = self.senders[i].send(Arrival::Accepted(stream, addr, home));
    }

    /// The loop `client` should move to, decided once per window of its
    /// commands (see [`Loops`]).
    fn destination(&self, server: &Server, client: &mut Client) -> Option<usize> {
        let gathering = client.mix.take_window()?;
        // One loop and the overflow loop: nowhere to gather.
        if self.senders.len() < 3 {
            return None;
        }
        let to = if gathering >= GateMix::WINDOW / 4 * 3 {
            EXCLUSIVE_LOOP
        } else if gathering <= GateMix::WINDOW / 4 || client.gate >= server.scaling.active() {
            server.scaling.home(client.home)
        } else {
            return None;
        };
        (to != client.gate && !server.scripting.busy.holds_loop(to)).then_some(to)
    }

    /// Sends a connection to loop `to`; closes it if that loop is gone.
    fn send_moved(&self, server: &Server, to: usize, moved: Moved) {
        if let Err(e) = self.senders[to].send(Arrival::Moved(Box::new(moved))) {
            abandon(server, e.0);
        }
    }
}

/// Accepts connections until shutdown.
pub async fn serve(server: Arc<Server>, listener: TcpListener, loops: Arc<Loops>) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        server.stats.connections_received.fetch_add(1, Relaxed);
        match stream.into_std() {
            Ok(stream) => loops.dispatch(&server, stream, addr),
            Err(e) => tracing::warn!("could not hand over a connection: {e}"),
        }
    }
}

/// Runs one event loop: serves the connections handed to it until the
/// server stops, then gives them a moment to finish their replies.
pub async fn event_loop(
    server: Arc<Server>,
    index: usize,
    loops: Arc<Loops>,
    mut incoming: Incoming,
) {
    crate::stats::use_loop_stripe(index);
    // Declared first, so dropped last: after every connection's outbox.
    let _serving = crate::pass::Serving::start(server.clone(), index);
    let wake_later = crate::pubsub::WakeLater::install();
    let mut shutdown = server.shutdown.subscribe();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = wake_later.ready() => wake_later.wake_all(),
            arrival = incoming.recv() => {
                let Some(arrival) = arrival else { break };
                match arrival {
                    Arrival::Accepted(stream, addr, home) => match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            let to = Placement { gate: index, home };
                            tasks.spawn(connection(server.clone(), stream, addr, to, loops.clone()));
                        }
                        Err(e) => tracing::warn!("could not register a connection: {e}"),
                    },
                    Arrival::Moved(moved) => {
                        let Moved { stream, bufs, mut client } = *moved;
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                client.gate = index;
                                tasks.spawn(serve_client(server.clone(), stream, bufs, client, loops.clone()));
                            }
                            Err(e) => {
                                tracing::warn!("could not register a moved connection: {e}");
                                close(&server, &mut client);
                            }
                        }
                    }
                }
            }
            Some(_) = tasks.join_next() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    // From here on the loop no longer waits on its deferred wake-ups.
    drop(wake_later);
    // Connections moving here now are not served: they close like the rest.
    incoming.close();
    while let Ok(arrival) = incoming.try_recv() {
        abandon(&server, arrival);
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// Closes a connection no loop will serve: an accepted socket just closes
/// when dropped, a moved client is also unregistered.
fn abandon(server: &Server, arrival: Arrival) {
    if let Arrival::Moved(mut moved) = arrival {
        close(server, &mut moved.client);
    }
}

/// The loop a new connection runs on, and the one it was dealt.
struct Placement {
    gate: usize,
    home: usize,
}

async fn connection(
    server: Arc<Server>,
    mut stream: TcpStream,
    addr: SocketAddr,
    placed: Placement,
    loops: Arc<Loops>,
) {
    let _ = stream.set_nodelay(true);
    let keepalive = server.config.get_i64("tcp-keepalive");
    if keepalive > 0 {
        let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(keepalive as u64));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka);
    }
    if server.clients.len() as u64 >= server.config.maxclients.load(Relaxed) {
        server.stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let laddr = stream.local_addr().unwrap_or(addr);
    let requirepass = server.config.requirepass_set.load(Relaxed);
    let mut client = server.clients.register(addr, laddr, requirepass);
    client.gate = placed.gate;
    client.home = placed.home;
    let bufs = Buffers {
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        parser: RequestParser::new(),
        reply: Reply::new(Protocol::Resp2),
    };
    serve_client(server, stream, bufs, client, loops).await;
}

/// Serves a client on this loop until it goes (then unregisters it) or
/// moves to another loop.
async fn serve_client(
    server: Arc<Server>,
    mut stream: TcpStream,
    mut bufs: Buffers,
    mut client: Client,
    loops: Arc<Loops>,
) {
    let here = &server.loop_clients[client.gate];
    here.fetch_add(1, Relaxed);
    let outbox = Outbox::new(&stream, client.shared.clone());
    let to = run_client(
        &server,
        &loops,
        &mut stream,
        &outbox,
        &mut bufs,
        &mut client,
    )
    .await;
    // Before the socket closes or moves: the end of the pass must not
    // write to it any more.
    drop(outbox);
    here.fetch_sub(1, Relaxed);
    let Some(to) = to else {
        close(&server, &mut client);
        return;
    };
    match stream.into_std() {
        Ok(stream) => loops.send_moved(
            &server,
            to,
            Moved {
                stream,
                bufs,
                client,
            },
        ),
        Err(e) => {
            tracing::warn!("could not move a connection: {e}");
            close(&server, &mut client);
        }
    }
}

/// Everything a client leaves behind when its connection ends.
fn close(server: &Server, client: &mut Client) {
    server.pubsub.forget(&client.shared);
    client.unwatch_all(server);
    server.clients.unregister(client.shared.id);
}

/// The read-execute-write loop of one client. Some(loop) when the client
/// is to move to that loop, None when it has gone.
async fn run_client(
    server: &Server,
    loops: &Loops,
    stream: &mut TcpStream,
    outbox: &Outbox,
    bufs: &mut Buffers,
    client: &mut Client,
) -> Option<usize> {
    let Buffers {
        rbuf,
        parser,
        reply,
    } = bufs;
    // After a blocked command is served, commands already buffered run
    // before the socket is read again.
    let mut read_first = true;
    loop {
        if read_first {
            let wanted = parser.bytes_wanted(rbuf.len()).max(READ_CHUNK);
            rbuf.reserve(wanted);
            let idle = server.config.timeout_secs.load(Relaxed);
            let sub = &client.shared.pubsub;
            // Subscribers are exempt from the idle timeout, as in Redis.
            let idle = if sub.active() { 0 } else { idle };
            let listening = sub.active() || sub.has_pending();
            let room = rbuf.capacity() - rbuf.len();
            let read = tokio::select! {
                r = stream.read_buf(rbuf) => r,
                _ = sub.ready.notified(), if listening => {
                    if !write_messages(server, stream, outbox, client, &mut reply.buf).await {
                        return None;
                    }
                    continue;
                }
                needs = attention(server, &client.shared, outbox) => match needs {
                    Needs::Write => {
                        if !write_now(server, stream, outbox, client, &mut reply.buf).await {
                            return None;
                        }
                        continue;
                    }
                    Needs::Close => {
                        // A stopping server still sends what the client's
                        // last pass left, as it did when replies went at once.
                        if server.stopping() && !client.shared.killed.load(Relaxed) {
                            write_now(server, stream, outbox, client, &mut reply.buf).await;
                        }
                        return None;
                    }
                },
                _ = idle_timeout(idle) => return None,
            };
            server.stats.reads_processed.add(1);
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    server.stats.net_input_bytes.add(n as u64);
                    if n < room {
                        drained(stream);
                    }
                }
            };
        }
        let (consumed, flow) = process(server, client, parser, rbuf, reply).await;
        rbuf.advance(consumed);
        // Replies wait for the end of the pass only when the connection
        // goes back to reading; before a close or a wait they go now.
        let later = matches!(flow, Flow::Continue | Flow::Sleep(_) | Flow::Offload)
            && outbox.defer(&mut reply.buf, client.aof_ticket);
        if !later && !write_now(server, stream, outbox, client, &mut reply.buf).await {
            return None;
        }
        read_first = true;
        match flow {
            Flow::Close => return None,
            Flow::Shutdown => {
                server.request_shutdown();
                return None;
            }
            Flow::Block {
                timeout,
                on_timeout,
            } => {
                if !wait_blocked(
                    server, stream, outbox, client, rbuf, reply, timeout, on_timeout,
                )
                .await
                {
                    return None;
                }
                crate::persist::aof::before_served_reply(server).await;
                if !write_now(server, stream, outbox, client, &mut reply.buf).await {
                    return None;
                }
                read_first = false;
            }
            Flow::Continue | Flow::Sleep(_) | Flow::Offload => {}
        }
        if client.shared.killed.load(Relaxed) {
            return None;
        }
        if rbuf.len() as u64 > server.config.query_buffer_limit.load(Relaxed) {
            tracing::warn!(
                "closing client {} that reached max query buffer length",
                client.shared.addr
            );
            return None;
        }
        // Only between reads: what is left in the buffer is an incomplete
        // request, which the parser carries along.
        if read_first {
            if let Some(to) = loops.destination(server, client) {
                // The replies left for this loop's pass go first.
                return write_now(server, stream, outbox, client, &mut reply.buf)
                    .await
                    .then_some(to);
            }
        }
    }
}

/// Tells the runtime the socket has been read dry, so the next read waits
/// for the poller instead of first trying a read that would fail: a read
/// that did not fill the buffer took everything the kernel had. This saves
/// one system call per request, the difference between tokio's
/// edge-triggered readiness and Redis's event loop at pipeline depth 1. If
/// data arrived meanwhile, the poller reports it again, so nothing is lost
/// (tokio only clears readiness it has not seen renewed since).
fn drained(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
}

/// Writes what the outbox holds, then `out`, once the AOF has the
/// records of the client's commands; false when the client has gone.
async fn write_now(
    server: &Server,
    stream: &mut TcpStream,
    outbox: &Outbox,
    client: &Client,
    out: &mut Vec<u8>,
) -> bool {
    // Also with nothing to write: the records go in before the client's
    // next request is read, as when a reply is left for the pass.
    crate::persist::aof::before_reply(server, client).await;
    let waiting = outbox.take();
    for buf in [&waiting, &*out] {
        if !send(server, stream, &client.shared, buf).await {
            return false;
        }
    }
    out.clear();
    if out.capacity() > KEEP_OUTPUT {
        out.shrink_to(READ_CHUNK);
    }
    true
}

/// Sends the pub/sub messages queued for this client in one go; false
/// when the client has gone or is killed meanwhile (a subscriber that
/// stopped reading is killed for its output limit while the write waits).
/// They go out through `out`, the connection's reply buffer, which holds
/// nothing between requests.
async fn write_messages(
    server: &Server,
    stream: &mut TcpStream,
    outbox: &Outbox,
    client: &Client,
    out: &mut Vec<u8>,
) -> bool {
    let sub = &client.shared.pubsub;
    let n = sub.drain_into(out);
    if n == 0 {
        return true;
    }
    // As Redis, messages go out at the end of the pass with the replies.
    // Once there they no longer count towards the output limit: the
    // socket takes them, or the outbox refuses more until this connection
    // has written them itself, while the queue grows and counts.
    let written = outbox.defer(out, client.aof_ticket)
        || write_now(server, stream, outbox, client, out).await;
    sub.written(n);
    out.clear();
    written && !client.shared.killed.load(Relaxed)
}

/// Writes `buf` unless the client is killed or the server stops first (a
/// client that stopped reading would hold the write forever); false when
/// it did not get through.
async fn send(server: &Server, stream: &mut TcpStream, shared: &ClientShared, buf: &[u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    server.stats.writes_processed.add(1);
    let written = tokio::select! {
        // What the socket takes at once goes, even from a closing client.
        biased;
        r = stream.write_all(buf) => r.is_ok(),
        _ = must_close(server, shared) => false,
    };
    if written {
        server.stats.net_output_bytes.add(buf.len() as u64);
    }
    written
}

/// Waits while the client is blocked: until a writer serves it, its
/// timeout passes, it is unblocked, or it goes away (then its waiter is
/// removed and false is returned). Input that arrives meanwhile is kept
/// for later, as Redis keeps it in the query buffer.
#[allow(clippy::too_many_arguments)]
async fn wait_blocked(
    server: &Server,
    stream: &mut TcpStream,
    outbox: &Outbox,
    client: &mut Client,
    rbuf: &mut BytesMut,
    reply: &mut Reply,
    timeout: Option<Duration>,
    on_timeout: TimeoutReply,
) -> bool {
    let Some(mut rx) = client.wait.take() else {
        return true;
    };
    let id = client.shared.id;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let wake = loop {
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        rbuf.reserve(READ_CHUNK);
        let sub = &client.shared.pubsub;
        let listening = sub.active() || sub.has_pending();
        tokio::select! {
            w = &mut rx => break w.ok(),
            _ = sub.ready.notified(), if listening => {
                if !write_messages(server, stream, outbox, client, &mut reply.buf).await {
                    server.blocking.cancel(id);
                    return false;
                }
            }
            _ = expired => {
                if server.blocking.cancel(id) {
                    break Some(Wake::Timeout);
                }
                // Served just now: the reply is in the channel.
                break rx.await.ok();
            }
            r = stream.read_buf(rbuf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    server.blocking.cancel(id);
                    return false;
                }
                if rbuf.len() as u64 > server.config.query_buffer_limit.load(Relaxed) {
                    server.blocking.cancel(id);
                    return false;
                }
            }
            _ = must_close(server, &client.shared) => {
                server.blocking.cancel(id);
                return false;
            }
        }
    };
    match wake {
        Some(Wake::Served(bytes)) => reply.raw(&bytes),
        Some(Wake::Timeout) | None => match on_timeout {
            TimeoutReply::NullArray => reply.null_array(),
            TimeoutReply::NullBulk => reply.null(),
        },
        Some(Wake::Error) => {
            command::error_reply(
                server,
                reply,
                "UNBLOCKED client unblocked via CLIENT UNBLOCK",
            );
        }
    }
    true
}

/// Resolves once the client is killed or the server is stopping. Made
/// anew for every select: registering the task's waker is a few atomic
/// operations, so nothing stays registered between reads.
fn must_close<'a>(
    server: &'a Server,
    shared: &'a ClientShared,
) -> impl std::future::Future<Output = ()> + 'a {
    std::future::poll_fn(move |cx| {
        shared.attention.register(cx.waker());
        if closing(server, shared) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
}

/// Whether the client is killed or the server is stopping.
fn closing(server: &Server, shared: &ClientShared) -> bool {
    shared.killed.load(Relaxed) || server.stopping()
}

/// [`must_close`], and what the end of an event-loop pass left to the
/// connection (crate::pass): it wakes the same waker.
fn attention<'a>(
    server: &'a Server,
    shared: &'a ClientShared,
    outbox: &'a Outbox,
) -> impl std::future::Future<Output = Needs> + 'a {
    std::future::poll_fn(move |cx| {
        shared.attention.register(cx.waker());
        if closing(server, shared) {
            return std::task::Poll::Ready(Needs::Close);
        }
        match outbox.needs() {
            Some(needs) => std::task::Poll::Ready(needs),
            None => std::task::Poll::Pending,
        }
    })
}

/// Resolves once the server is stopping; yields nothing that borrows the
/// channel, so it can sit in a select whose branches await.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn idle_timeout(secs: u64) {
    if secs == 0 {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Executes every complete request at the front of `buf`. Returns how many
/// bytes were consumed and what the connection must do next.
async fn process(
    server: &Server,
    client: &mut Client,
    parser: &mut RequestParser,
    buf: &[u8],
    reply: &mut Reply,
) -> (usize, Flow) {
    // Once per read, as Redis: a clock read per command showed in profiles.
    client
        .shared
        .last_interaction_ms
        .store(crate::now_ms(), Relaxed);
    let mut pos = 0;
    loop {
        let flow = match run_ready(server, client, parser, buf, &mut pos, reply) {
            Step::Incomplete => return (pos, Flow::Continue),
            Step::Done(flow) => flow,
            Step::Wait(start) => {
                let mut argv: SmallVec<[&[u8]; 8]> = SmallVec::new();
                parser.args(&buf[start..], &mut argv);
                dispatch(server, client, &argv, reply).await
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Sleep(d) => tokio::time::sleep(d).await,
            flow => return (pos, flow),
        }
    }
}

/// How [`run_ready`] stopped.
enum Step {
    /// The rest of the buffer is not a whole request.
    Incomplete,
    /// A request ended with this flow (never Continue).
    Done(Flow),
    /// The request parsed at this offset has to wait (for a pause, a
    /// running script, a contended gate or the script thread): it has not
    /// run, and the parser still holds its arguments.
    Wait(usize),
}

/// Runs the complete requests from `pos` on for as long as none has to
/// wait, holding the gate from one to the next (crate::gate).
fn run_ready(
    server: &Server,
    client: &mut Client,
    parser: &mut RequestParser,
    buf: &[u8],
    pos: &mut usize,
    reply: &mut Reply,
) -> Step {
    let mut held = Held::Nothing;
    loop {
        let limits = Limits {
            max_bulk_len: server.config.proto_max_bulk_len.load(Relaxed),
            authenticated: client.authenticated,
        };
        let start = *pos;
        let n = match parser.parse(&buf[start..], &limits) {
            Ok(Some(n)) => n,
            Ok(None) => return Step::Incomplete,
            Err(e) => {
                command::error_reply(server, reply, &format!("ERR {e}"));
                *pos = buf.len();
                return Step::Done(Flow::Close);
            }
        };
        *pos += n;
        let mut argv: SmallVec<[&[u8]; 8]> = SmallVec::new();
        parser.args(&buf[start..], &mut argv);
        if argv.is_empty() {
            continue;
        }
        match try_dispatch(server, client, &argv, reply, &mut held) {
            Some(Flow::Continue) => {}
            Some(flow) => return Step::Done(flow),
            None => return Step::Wait(start),
        }
    }
}

/// [`dispatch`] for a request that need not wait: None (with nothing done)
/// when it must.
fn try_dispatch<'a>(
    server: &'a Server,
    client: &mut Client,
    argv: &[&[u8]],
    reply: &mut Reply,
    held: &mut Held<'a>,
) -> Option<Flow> {
    let resolved = server
        .commands
        .resolve(argv)
        .and_then(|r| command::admit(server, client, &r).map(|()| r));
    if let Ok(r) = &resolved {
        if !queues(client, r) && server.clients.paused_until(writes(r)).is_some() {
            return None;
        }
    }
    let (mark, skip) = begin(client, reply);
    let flow = match resolved {
        Err(e) => rejected(server, client, reply, &e, argv),
        Ok(r) if queues(client, &r) => queue(client, &r, argv, reply),
        Ok(r) => {
            client.shared.last_cmd.store(r.id, Relaxed);
            match crate::scripting::try_execute(server, client, &r, argv, reply, held) {
                Some(flow) => flow,
                None => {
                    client.skip_next = skip;
                    return None;
                }
            }
        }
    };
    end(client, reply, mark, skip);
    Some(flow)
}

/// Resolves and runs one request, honouring CLIENT PAUSE and CLIENT REPLY.
async fn dispatch(server: &Server, client: &mut Client, argv: &[&[u8]], reply: &mut Reply) -> Flow {
    let (mark, skip) = begin(client, reply);
    let flow = match pipeline(server, client, argv, reply).await {
        Ok(flow) => flow,
        Err(e) => rejected(server, client, reply, &e, argv),
    };
    end(client, reply, mark, skip);
    flow
}

/// Starts a request's reply: messages published before it reach the
/// client first, as they would from Redis's single output buffer. Returns
/// where its reply starts and whether CLIENT REPLY SKIP drops it.
fn begin(client: &mut Client, reply: &mut Reply) -> (usize, bool) {
    let sub = &client.shared.pubsub;
    if sub.has_pending() {
        let n = sub.drain_into(&mut reply.buf);
        sub.written(n);
    }
    (reply.buf.len(), std::mem::take(&mut client.skip_next))
}

/// Drops the request's reply if CLIENT REPLY says so.
fn end(client: &Client, reply: &mut Reply, mark: usize, skip: bool) {
    if skip || client.reply_off {
        reply.buf.truncate(mark);
    }
}

/// Answers a request rejected before it ran; one rejected while queueing
/// dooms the transaction.
fn rejected(
    server: &Server,
    client: &mut Client,
    reply: &mut Reply,
    e: &command::CmdError,
    argv: &[&[u8]],
) -> Flow {
    if let Some(multi) = client.multi.as_mut() {
        multi.aborted = true;
    }
    if matches!(e, command::CmdError::WrongArity(_)) {
        server.commands.note_rejected(argv);
    }
    command::error_reply(server, reply, &e.text());
    Flow::Continue
}

/// Whether `r` is queued by an open MULTI rather than run.
fn queues(client: &Client, r: &command::Resolved) -> bool {
    client.multi.is_some() && !r.cmd.has(flags::TXN_CONTROL)
}

fn queue(client: &mut Client, r: &command::Resolved, argv: &[&[u8]], reply: &mut Reply) -> Flow {
    let db = client.db;
    if let Some(multi) = client.multi.as_mut() {
        command::transactions::note_queued(multi, db, r.cmd, argv);
        multi.commands.push(r.clone(), argv);
    }
    reply.simple("QUEUED");
    Flow::Continue
}

/// Whether CLIENT PAUSE WRITE holds `r` back.
fn writes(r: &command::Resolved) -> bool {
    r.cmd.has(flags::WRITE) || r.cmd.has(flags::MAY_REPLICATE)
}

/// The ordered checks every request goes through, as Redis's
/// processCommand: lookup and arity, admission (auth, MULTI rules), MULTI
/// queueing, CLIENT PAUSE, then execution under the gate (waiting for, or
/// refused by, a running script: see crate::scripting).
async fn pipeline(
    server: &Server,
    client: &mut Client,
    argv: &[&[u8]],
    reply: &mut Reply,
) -> Result<Flow, command::CmdError> {
    let r = server.commands.resolve(argv)?;
    command::admit(server, client, &r)?;
    if queues(client, &r) {
        return Ok(queue(client, &r, argv, reply));
    }
    while let Some(until) = server.clients.paused_until(writes(&r)) {
        let wait = Duration::from_millis((until - crate::now_ms()).max(1) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = server.clients.unpaused.notified() => {}
        }
    }
    client.shared.last_cmd.store(r.id, Relaxed);
    crate::scripting::execute(server, client, &r, argv, reply).await
}
