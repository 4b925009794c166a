//! Connection commands: PING, ECHO, QUIT, RESET, SELECT, AUTH, HELLO.
//!
//! They change only the calling client's state: its database, protocol,
//! name and authentication. The protocol lives in two places that must
//! agree: the reply encoder (`ctx.reply.proto`) and `client.shared.resp`,
//! which CLIENT LIST shows.

use std::sync::atomic::Ordering::Relaxed;

use ferrokv_resp::Protocol;

use super::{acl, args, flags, CmdError, Command, Ctx, Flow, NO_KEYS};

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys: NO_KEYS,
        acl: acl::CONNECTION,
        handler,
        subcommands: &[],
        group: "connection",
        summary,
        since,
    }
}

/// Commands a client may send before it authenticates, and while the
/// server is loading or busy.
const HANDSHAKE: u32 = flags::NOSCRIPT
    | flags::LOADING
    | flags::STALE
    | flags::FAST
    | flags::NO_AUTH
    | flags::ALLOW_BUSY;

pub const COMMANDS: &[Command] = &[
    cmd(
        "ping",
        -1,
        flags::FAST | flags::SUBSCRIBER,
        ping,
        "Ping the server",
        "1.0.0",
    ),
    cmd(
        "echo",
        2,
        flags::LOADING | flags::STALE | flags::FAST,
        echo,
        "Echo the given string",
        "1.0.0",
    ),
    cmd(
        "quit",
        -1,
        HANDSHAKE | flags::TXN_CONTROL | flags::SUBSCRIBER,
        quit,
        "Close the connection",
        "1.0.0",
    ),
    cmd(
        "reset",
        1,
        HANDSHAKE | flags::TXN_CONTROL | flags::SUBSCRIBER,
        reset,
        "Reset the connection",
        "6.2.0",
    ),
    cmd(
        "select",
        2,
        flags::LOADING | flags::STALE | flags::FAST,
        select,
        "Change the selected database for the current connection",
        "1.0.0",
    ),
    cmd(
        "auth",
        -2,
        HANDSHAKE,
        auth,
        "Authenticate to the server",
        "1.0.0",
    ),
    cmd(
        "hello",
        -1,
        HANDSHAKE,
        hello,
        "Handshake with Redis",
        "6.0.0",
    ),
];

const WRONGPASS: CmdError =
    CmdError::Static("WRONGPASS invalid username-password pair or user is disabled.");

/// PING [message]: +PONG, or the message as a bulk string. A RESP2
/// client in subscriber mode gets `["pong", message or ""]` instead, a
/// reply its pub/sub reader can parse.
fn ping(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() > 2 {
        return Err(CmdError::WrongArity("ping".into()));
    }
    if ctx.client.shared.pubsub.active() && !ctx.reply.is_resp3() {
        ctx.reply.array(2);
        ctx.reply.bulk(b"pong");
        ctx.reply.bulk(argv.get(1).copied().unwrap_or_default());
        return Ok(());
    }
    match argv.get(1) {
        None => ctx.reply.simple("PONG"),
        Some(msg) => ctx.reply.bulk(msg),
    }
    Ok(())
}

/// ECHO message: the message as a bulk string.
fn echo(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.bulk(argv[1]);
    Ok(())
}

/// QUIT: +OK, then the connection closes.
fn quit(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.ok();
    ctx.flow = Flow::Close;
    Ok(())
}

/// RESET: +RESET. The connection goes back to how it started: database 0,
/// RESP2, no name, replies on, eviction allowed, no subscriptions, and
/// unauthenticated again when a password is required.
fn reset(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.pubsub.forget(&ctx.client.shared);
    ctx.client.select(0);
    set_protocol(ctx, Protocol::Resp2);
    ctx.client.shared.set_name(b"");
    ctx.client.shared.no_evict.store(false, Relaxed);
    ctx.client.reply_off = false;
    ctx.client.skip_next = false;
    ctx.client.multi = None;
    ctx.client.unwatch_all(ctx.server);
    ctx.client.authenticated = !ctx.server.config.requirepass_set.load(Relaxed);
    ctx.reply.simple("RESET");
    Ok(())
}

/// SELECT index: +OK; errors for a non-integer or out-of-range index.
fn select(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let db = args::db_index(argv[1], ctx.server.keyspace.len())?;
    ctx.client.select(db);
    ctx.reply.ok();
    Ok(())
}

/// AUTH [username] password: +OK, or WRONGPASS. The one-argument form is
/// an error when no password is configured (Redis keeps that old
/// behaviour to catch misconfigured clients).
fn auth(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (user, pass) = match argv {
        [_, pass] => {
            if !ctx.server.config.requirepass_set.load(Relaxed) {
                return Err(CmdError::Static(
                    "ERR AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?",
                ));
            }
            (&b"default"[..], *pass)
        }
        [_, user, pass] => (*user, *pass),
        _ => return Err(CmdError::Syntax),
    };
    authenticate(ctx, user, pass)?;
    ctx.reply.ok();
    Ok(())
}

/// Checks credentials for the only user there is, `default`, and marks the
/// client authenticated. Without `requirepass` the default user takes any
/// password, as Redis's `nopass` user does.
fn authenticate(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    if user != b"default" {
        return Err(WRONGPASS);
    }
    let required = ctx.server.config.get("requirepass");
    if !required.is_empty() && !same_secret(required.as_bytes(), pass) {
        return Err(WRONGPASS);
    }
    ctx.client.authenticated = true;
    Ok(())
}

/// Compares without stopping at the first differing byte, so response
/// times do not reveal how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]: a map
/// describing the server (a flat array in RESP2), written in the protocol
/// just selected. Unauthenticated clients may only use it with AUTH.
fn hello(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut proto = None;
    if let Some(v) = argv.get(1) {
        let v = args::parse_i64_exact(v).ok_or(CmdError::Static(
            "ERR Protocol version is not an integer or out of range",
        ))?;
        proto = match v {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => return Err(CmdError::Static("NOPROTO unsupported protocol version")),
        };
    }
    let mut credentials = None;
    let mut name = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if args::is(argv[i], "auth") && more >= 2 {
            credentials = Some((argv[i + 1], argv[i + 2]));
            i += 3;
        } else if args::is(argv[i], "setname") && more >= 1 {
            validate_name(argv[i + 1])?;
            name = Some(argv[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::Owned(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(argv[i])
            )));
        }
    }
    if let Some((user, pass)) = credentials {
        authenticate(ctx, user, pass)?;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::Static(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH \
             <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time",
        ));
    }
    if let Some(name) = name {
        ctx.client.shared.set_name(name);
    }
    if let Some(p) = proto {
        set_protocol(ctx, p);
    }
    let r = &mut *ctx.reply;
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(crate::REDIS_VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(if r.is_resp3() { 3 } else { 2 });
    r.bulk(b"id");
    r.int(ctx.client.shared.id as i64);
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
    Ok(())
}

/// Switches the connection's reply protocol and the copy CLIENT LIST shows.
fn set_protocol(ctx: &mut Ctx<'_>, proto: Protocol) {
    ctx.reply.proto = proto;
    let n = if proto == Protocol::Resp3 { 3 } else { 2 };
    ctx.client.shared.resp.store(n, Relaxed);
}

/// Client names are printable ASCII without spaces, so CLIENT LIST stays
/// parseable.
pub fn validate_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(CmdError::Static(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}
