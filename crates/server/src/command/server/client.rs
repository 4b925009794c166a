//! CLIENT and its subcommands: the calling connection's own settings (ID,
//! SETNAME, GETNAME, INFO, REPLY, NO-EVICT) and actions on other clients
//! through the registry (LIST, KILL, PAUSE, UNPAUSE).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::super::{acl, args, flags, CmdError, Command, Ctx, Flow};
use super::{container, entry, subcommand_syntax};
use crate::blocking::Wake;
use crate::client::{ClientShared, PauseMode};
use crate::pubsub::Kind;
use crate::Server;

const OWN: u32 = flags::NOSCRIPT | flags::LOADING | flags::STALE;
const ADMIN: u32 = flags::ADMIN | OWN;

const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    entry(
        name,
        arity,
        flags,
        acl::CONNECTION,
        handler,
        "connection",
        summary,
        since,
    )
}

pub const CLIENT: Command = container(
    "client",
    &[
        sub(
            "id",
            2,
            OWN,
            id,
            "Returns the client ID for the current connection",
            "5.0.0",
        ),
        sub(
            "setname",
            3,
            OWN,
            setname,
            "Set the current connection name",
            "2.6.9",
        ),
        sub(
            "getname",
            2,
            OWN,
            getname,
            "Get the current connection name",
            "2.6.9",
        ),
        sub(
            "list",
            -2,
            ADMIN,
            list,
            "Get the list of client connections",
            "2.4.0",
        ),
        sub(
            "info",
            2,
            OWN,
            info,
            "Returns information about the current client connection.",
            "6.2.0",
        ),
        sub(
            "kill",
            -3,
            ADMIN,
            kill,
            "Kill the connection of a client",
            "2.4.0",
        ),
        sub(
            "pause",
            -3,
            ADMIN,
            pause,
            "Stop processing commands from clients for some time",
            "2.9.50",
        ),
        sub(
            "unpause",
            2,
            ADMIN,
            unpause,
            "Resume processing of clients that were paused",
            "6.2.0",
        ),
        sub(
            "reply",
            3,
            OWN,
            reply,
            "Instruct the server whether to reply to commands",
            "3.2.0",
        ),
        sub(
            "unblock",
            -3,
            ADMIN,
            unblock,
            "Unblock a client blocked in a blocking command from a different connection",
            "5.0.0",
        ),
        sub(
            "no-evict",
            3,
            ADMIN,
            no_evict,
            "Set client eviction mode for the current connection",
            "7.0.0",
        ),
        sub(
            "help",
            2,
            flags::LOADING | flags::STALE,
            help,
            "Show helpful text about the different subcommands",
            "5.0.0",
        ),
    ],
    "connection",
    "A container for client connection commands",
    "2.4.0",
);

/// CLIENT ID: this connection's id.
fn id(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.int(ctx.client.shared.id as i64);
    Ok(())
}

/// CLIENT SETNAME name: +OK; an empty name removes it.
fn setname(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    super::super::connection::validate_name(argv[2])?;
    ctx.client.shared.set_name(argv[2]);
    ctx.reply.ok();
    Ok(())
}

/// CLIENT GETNAME: the name, or nil when none is set.
fn getname(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let name = ctx.client.shared.name();
    if name.is_empty() {
        ctx.reply.null();
    } else {
        ctx.reply.bulk(&name);
    }
    Ok(())
}

/// Client types as CLIENT LIST/KILL TYPE name them. A client is of the
/// pubsub type while it has subscriptions, of the normal type otherwise
/// (ferrokv has no replication: no master or replica clients).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    PubSub,
    Replication,
}

fn client_type(name: &[u8]) -> Result<ClientType, CmdError> {
    if args::is(name, "normal") {
        Ok(ClientType::Normal)
    } else if args::is(name, "pubsub") {
        Ok(ClientType::PubSub)
    } else if ["master", "slave", "replica"]
        .iter()
        .any(|t| args::is(name, t))
    {
        Ok(ClientType::Replication)
    } else {
        Err(CmdError::Owned(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        )))
    }
}

fn is_of_type(c: &ClientShared, t: ClientType) -> bool {
    match t {
        ClientType::Normal => !c.pubsub.active(),
        ClientType::PubSub => c.pubsub.active(),
        ClientType::Replication => false,
    }
}

/// CLIENT LIST [TYPE type | ID id [id ...]]: one line per client.
fn list(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let clients = ctx.server.clients.all();
    let selected: Vec<&ClientShared> = match argv {
        [_, _] => clients.iter().map(|c| &**c).collect(),
        [_, _, t, name] if args::is(t, "type") => {
            let t = client_type(name)?;
            clients
                .iter()
                .filter(|c| is_of_type(c, t))
                .map(|c| &**c)
                .collect()
        }
        [_, _, t, ids @ ..] if args::is(t, "id") && !ids.is_empty() => {
            let ids = ids
                .iter()
                .map(|a| args::parse_i64_exact(a).ok_or(CmdError::Static("ERR Invalid client ID")))
                .collect::<Result<Vec<i64>, _>>()?;
            clients
                .iter()
                .filter(|c| ids.contains(&(c.id as i64)))
                .map(|c| &**c)
                .collect()
        }
        _ => return Err(CmdError::Syntax),
    };
    let mut out = String::new();
    for c in selected {
        describe(ctx.server, c, &mut out);
    }
    ctx.reply.bulk(out.as_bytes());
    Ok(())
}

/// CLIENT INFO: this connection's CLIENT LIST line.
fn info(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut out = String::new();
    describe(ctx.server, &ctx.client.shared, &mut out);
    ctx.reply.bulk(out.as_bytes());
    Ok(())
}

/// One CLIENT LIST line in Redis 7.0's field order. Buffer and memory
/// figures and the descriptor are not tracked per client: they show as 0
/// (fd as -1) rather than invented numbers.
fn describe(server: &Server, c: &ClientShared, out: &mut String) {
    let now = crate::now_ms();
    let age = c.created.elapsed().as_secs();
    let idle = (now - c.last_interaction_ms.load(Relaxed)).max(0) / 1000;
    let cmd = server
        .commands
        .full_name(c.last_cmd.load(Relaxed))
        .unwrap_or("NULL".into());
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd=-1 name={} age={age} idle={idle} flags={} db={} sub={} psub={} ssub={} multi=-1 \
         qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} \
         user=default redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        String::from_utf8_lossy(&c.name()),
        if c.pubsub.active() { "P" } else { "N" },
        c.db.load(Relaxed),
        c.pubsub.count(Kind::Channel),
        c.pubsub.count(Kind::Pattern),
        c.pubsub.count(Kind::Shard),
        c.resp.load(Relaxed),
    );
}

/// CLIENT KILL ip:port | CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port]
/// [USER name] [TYPE type] [SKIPME yes|no]: the old form replies +OK (or
/// "No such client") and may kill the caller; the new form replies with the
/// number killed and skips the caller unless SKIPME no. A killed caller
/// gets its reply before the connection closes.
fn kill(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut addr = None;
    let mut laddr = None;
    let mut id = None;
    let mut of_type = None;
    let old_form = argv.len() == 3;
    let mut skipme = !old_form;
    if old_form {
        addr = Some(argv[2]);
    } else {
        let mut i = 2;
        while i < argv.len() {
            let (opt, value) = match argv.get(i + 1) {
                Some(v) => (argv[i], *v),
                None => return Err(CmdError::Syntax),
            };
            if args::is(opt, "id") {
                let n = args::parse_i64_exact(value)
                    .filter(|n| *n >= 1)
                    .ok_or(CmdError::Static("ERR client-id should be greater than 0"))?;
                id = Some(n as u64);
            } else if args::is(opt, "type") {
                of_type = Some(client_type(value)?);
            } else if args::is(opt, "addr") {
                addr = Some(value);
            } else if args::is(opt, "laddr") {
                laddr = Some(value);
            } else if args::is(opt, "user") {
                if value != b"default" {
                    return Err(CmdError::Owned(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(value)
                    )));
                }
            } else if args::is(opt, "skipme") {
                skipme = if args::is(value, "yes") {
                    true
                } else if args::is(value, "no") {
                    false
                } else {
                    return Err(CmdError::Syntax);
                };
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
    }
    let me = ctx.client.shared.id;
    let mut killed = 0;
    for c in ctx.server.clients.all() {
        let matches = of_type.is_none_or(|t| is_of_type(&c, t))
            && addr.is_none_or(|a| a == c.addr.to_string().as_bytes())
            && laddr.is_none_or(|a| a == c.laddr.to_string().as_bytes())
            && id.is_none_or(|id| id == c.id);
        if !matches || (skipme && c.id == me) {
            continue;
        }
        if c.id == me {
            ctx.flow = Flow::Close;
        } else {
            c.kill();
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            return Err(CmdError::Static("ERR No such client"));
        }
        ctx.reply.ok();
    } else {
        ctx.reply.int(killed);
    }
    Ok(())
}

/// CLIENT PAUSE timeout [WRITE|ALL]: +OK; clients' commands (or only
/// those that may write) wait until `timeout` milliseconds from now.
fn pause(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() > 4 {
        return Err(subcommand_syntax(argv));
    }
    let mode = match argv.get(3) {
        None => PauseMode::All,
        Some(m) if args::is(m, "write") => PauseMode::Write,
        Some(m) if args::is(m, "all") => PauseMode::All,
        Some(_) => {
            return Err(CmdError::Static(
                "ERR CLIENT PAUSE mode must be WRITE or ALL",
            ))
        }
    };
    let ms = args::parse_i64_exact(argv[2]).ok_or(CmdError::Static(
        "ERR timeout is not an integer or out of range",
    ))?;
    if ms < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    let until = ctx
        .now_ms
        .checked_add(ms)
        .ok_or(CmdError::Static("ERR timeout is out of range"))?;
    ctx.server.clients.pause(mode, until);
    ctx.reply.ok();
    Ok(())
}

/// CLIENT UNPAUSE: +OK; paused clients go on.
fn unpause(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.clients.unpause();
    ctx.reply.ok();
    Ok(())
}

/// CLIENT REPLY ON|OFF|SKIP: +OK for ON; OFF and SKIP are themselves
/// silent. SKIP suppresses the next command's reply only.
fn reply(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mode = argv[2];
    if args::is(mode, "on") {
        ctx.client.reply_off = false;
        ctx.client.skip_next = false;
        ctx.reply.ok();
    } else if args::is(mode, "off") {
        ctx.client.reply_off = true;
    } else if args::is(mode, "skip") {
        if !ctx.client.reply_off {
            ctx.client.skip_next = true;
        }
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(())
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR]: 1 when the client was blocked
/// and has been released (with its timeout reply, or an UNBLOCKED error),
/// 0 otherwise.
fn unblock(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() > 4 {
        return Err(CmdError::Static(
            "ERR unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.",
        ));
    }
    let id = args::int(argv[2])?;
    let wake = match argv.get(3) {
        None => Wake::Timeout,
        Some(a) if args::is(a, "timeout") => Wake::Timeout,
        Some(a) if args::is(a, "error") => Wake::Error,
        Some(_) => {
            return Err(CmdError::Static(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let done = u64::try_from(id).is_ok_and(|id| ctx.server.blocking.finish(id, wake));
    ctx.reply.int(done as i64);
    Ok(())
}

/// CLIENT NO-EVICT ON|OFF: +OK.
fn no_evict(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let on = if args::is(argv[2], "on") {
        true
    } else if args::is(argv[2], "off") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    ctx.client.shared.no_evict.store(on, Relaxed);
    ctx.reply.ok();
    Ok(())
}

/// CLIENT HELP: Redis's text for the subcommands ferrokv has.
fn help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    super::help(
        ctx,
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    );
    Ok(())
}
