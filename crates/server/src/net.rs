//! Listeners and connection tasks.
//!
//! One task per connection reads whatever the socket has, executes every
//! complete request in the buffer, and writes all their replies with one
//! write: batching is what makes pipelined throughput. A protocol error
//! gets Redis's reply and closes the connection after the replies before
//! it; a client over `client-query-buffer-limit` is closed, as in Redis.
//! Every task ends when its client goes, is killed, or the server stops,
//! and unregisters itself on the way out.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrokv_resp::{Limits, Protocol, Reply, RequestParser};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::Client;
use crate::command::{self, flags, Flow};
use crate::Server;

const READ_CHUNK: usize = 16 * 1024;
/// Output buffers larger than this are released after each write, so one
/// large reply does not pin memory for the life of a connection.
const KEEP_OUTPUT: usize = 1024 * 1024;

/// Binds every `bind` address on `port`. Addresses prefixed with `-` are
/// optional, as in Redis: failing to bind them is not an error.
pub async fn bind(server: &Server) -> std::io::Result<Vec<TcpListener>> {
    let port = server.config.get_i64("port") as u16;
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
        match TcpListener::bind(&target).await {
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

/// Accepts connections until shutdown.
pub async fn serve(server: Arc<Server>, listener: TcpListener) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
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
        let server = server.clone();
        tokio::spawn(async move {
            connection(server, stream, addr).await;
        });
    }
}

async fn connection(server: Arc<Server>, mut stream: TcpStream, addr: SocketAddr) {
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
    let id = client.shared.id;
    run_client(&server, &mut stream, &mut client).await;
    server.clients.unregister(id);
}

/// The read-execute-write loop of one client.
async fn run_client(server: &Server, stream: &mut TcpStream, client: &mut Client) {
    let mut shutdown = server.shutdown.subscribe();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut parser = RequestParser::new();
    let mut reply = Reply::new(Protocol::Resp2);
    loop {
        let wanted = parser.bytes_wanted(rbuf.len()).max(READ_CHUNK);
        rbuf.reserve(wanted);
        let idle = server.config.timeout_secs.load(Relaxed);
        let read = tokio::select! {
            r = stream.read_buf(&mut rbuf) => r,
            _ = client.shared.kill.notified() => return,
            _ = shutdown.wait_for(|s| *s) => return,
            _ = idle_timeout(idle) => return,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => server.stats.net_input_bytes.fetch_add(n as u64, Relaxed),
        };
        let (consumed, flow) = process(server, client, &mut parser, &rbuf, &mut reply).await;
        rbuf.advance(consumed);
        if !reply.buf.is_empty() {
            if stream.write_all(&reply.buf).await.is_err() {
                return;
            }
            server
                .stats
                .net_output_bytes
                .fetch_add(reply.buf.len() as u64, Relaxed);
            reply.buf.clear();
            if reply.buf.capacity() > KEEP_OUTPUT {
                reply.buf.shrink_to(READ_CHUNK);
            }
        }
        match flow {
            Flow::Close => return,
            Flow::Shutdown => {
                server.request_shutdown();
                return;
            }
            _ => {}
        }
        if client.shared.killed.load(Relaxed) {
            return;
        }
        if rbuf.len() as u64 > server.config.query_buffer_limit.load(Relaxed) {
            tracing::warn!(
                "closing client {} that reached max query buffer length",
                client.shared.addr
            );
            return;
        }
    }
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
    let mut pos = 0;
    loop {
        let limits = Limits {
            max_bulk_len: server.config.proto_max_bulk_len.load(Relaxed),
            authenticated: client.authenticated,
        };
        let n = match parser.parse(&buf[pos..], &limits) {
            Ok(Some(n)) => n,
            Ok(None) => return (pos, Flow::Continue),
            Err(e) => {
                reply.error(&format!("ERR {e}"));
                return (buf.len(), Flow::Close);
            }
        };
        let mut argv: SmallVec<[&[u8]; 8]> = SmallVec::new();
        parser.args(&buf[pos..], &mut argv);
        pos += n;
        if argv.is_empty() {
            continue;
        }
        let flow = dispatch(server, client, &argv, reply).await;
        if flow != Flow::Continue {
            if let Flow::Sleep(d) = flow {
                tokio::time::sleep(d).await;
                continue;
            }
            return (pos, flow);
        }
    }
}

/// Resolves and runs one request, honouring CLIENT PAUSE and CLIENT REPLY.
async fn dispatch(server: &Server, client: &mut Client, argv: &[&[u8]], reply: &mut Reply) -> Flow {
    let mark = reply.buf.len();
    let skip = std::mem::take(&mut client.skip_next);
    client
        .shared
        .last_interaction_ms
        .store(crate::now_ms(), Relaxed);
    let flow = match server.commands.resolve(argv) {
        Err(e) => {
            reply.error(&e.text());
            Flow::Continue
        }
        Ok(r) => {
            let write = r.cmd.has(flags::WRITE) || r.cmd.has(flags::MAY_REPLICATE);
            while let Some(until) = server.clients.paused_until(write) {
                let wait = Duration::from_millis((until - crate::now_ms()).max(1) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = server.clients.unpaused.notified() => {}
                }
            }
            client.shared.last_cmd.store(r.id, Relaxed);
            command::execute(server, client, reply, &r, argv)
        }
    };
    if skip || client.reply_off {
        reply.buf.truncate(mark);
    }
    flow
}
