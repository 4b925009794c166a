//! Server commands: COMMAND, CONFIG, INFO, CLIENT, TIME, DEBUG, SLOWLOG,
//! LATENCY, SHUTDOWN.
//!
//! Each container command (CONFIG, CLIENT, SLOWLOG, LATENCY, COMMAND) lives
//! with its subcommands in one submodule; this module holds the table, the
//! small commands and what the submodules share (help replies, entry
//! constructors).

mod client;
mod config;
mod diag;
mod info;
mod introspect;

use super::{flags, CmdError, Command, Ctx, Flow, Handler, NO_KEYS};

pub const COMMANDS: &[Command] = &[
    introspect::COMMAND,
    config::CONFIG,
    info::INFO,
    client::CLIENT,
    entry(
        "time",
        1,
        flags::LOADING | flags::STALE | flags::FAST,
        0,
        time,
        "server",
        "Return the current server time",
        "2.6.0",
    ),
    diag::DEBUG,
    diag::SLOWLOG,
    diag::LATENCY,
    entry(
        "shutdown",
        -1,
        flags::ADMIN
            | flags::NOSCRIPT
            | flags::LOADING
            | flags::STALE
            | flags::NO_MULTI
            | flags::ALLOW_BUSY
            | flags::EXCLUSIVE,
        0,
        shutdown,
        "server",
        "Synchronously save the dataset to disk and then shut down the server",
        "1.0.0",
    ),
];

/// A keyless command or subcommand.
#[allow(clippy::too_many_arguments)]
pub(super) const fn entry(
    name: &'static str,
    arity: i32,
    flags: u32,
    acl: u32,
    handler: Handler,
    group: &'static str,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys: NO_KEYS,
        acl,
        handler,
        subcommands: &[],
        group,
        summary,
        since,
    }
}

/// A container command: no flags or categories of its own (Redis reports
/// only `@slow`), every action in a subcommand.
pub(super) const fn container(
    name: &'static str,
    subcommands: &'static [Command],
    group: &'static str,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity: -2,
        flags: 0,
        keys: NO_KEYS,
        acl: 0,
        handler: without_subcommand,
        subcommands,
        group,
        summary,
        since,
    }
}

/// A container called without a subcommand: dispatch rejects that by
/// arity already, this answers the same should it ever get here.
fn without_subcommand(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    Err(CmdError::WrongArity(
        String::from_utf8_lossy(argv[0]).to_lowercase(),
    ))
}

/// A `<NAME> HELP` reply: Redis's header, the subcommand lines, then HELP.
pub(super) fn help(ctx: &mut Ctx<'_>, name: &str, lines: &[&str]) {
    ctx.reply.array(lines.len() + 3);
    ctx.reply.simple(&format!(
        "{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        ctx.reply.simple(line);
    }
    ctx.reply.simple("HELP");
    ctx.reply.simple("    Prints this help.");
}

/// Redis's reply to a subcommand it does not know or that got a number of
/// arguments its handler does not accept (where the table's arity is only
/// a lower bound).
pub(super) fn subcommand_syntax(argv: &[&[u8]]) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(argv.get(1).copied().unwrap_or_default()),
        String::from_utf8_lossy(argv[0]).to_uppercase()
    ))
}

/// TIME: [unix seconds, microseconds] as two bulk strings.
fn time(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.reply.array(2);
    ctx.reply.bulk_int(now.as_secs() as i64);
    ctx.reply.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: no reply; the server
/// stops. It saves first with SAVE, or without NOSAVE when save points are
/// configured, as Redis does; if that save fails it replies an error and
/// keeps running, unless FORCE. Runs under the exclusive gate so that the
/// final snapshot is taken with every other client held off.
fn shutdown(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (mut save, mut nosave, mut now, mut force, mut abort) = (false, false, false, false, false);
    for arg in &argv[1..] {
        if super::args::is(arg, "nosave") {
            nosave = true;
        } else if super::args::is(arg, "save") {
            save = true;
        } else if super::args::is(arg, "now") {
            now = true;
        } else if super::args::is(arg, "force") {
            force = true;
        } else if super::args::is(arg, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (save && nosave) || (abort && (save || nosave || now || force)) {
        return Err(CmdError::Syntax);
    }
    if abort {
        // Shutdown is immediate, so there is never one to abort.
        return Err(CmdError::Static("ERR No shutdown in progress."));
    }
    if !nosave {
        // A script past the busy threshold only lets SHUTDOWN NOSAVE in.
        if let Some(e) = crate::scripting::busy_error(ctx.server) {
            return Err(e);
        }
    }
    tracing::warn!("User requested shutdown...");
    let policy = !ctx.server.config.get("save").is_empty();
    if save || (policy && !nosave) {
        if let Err(e) = crate::persist::save_for_shutdown(ctx.server) {
            tracing::warn!("Error trying to save the DB, can't exit: {e:?}");
            if !force {
                return Err(CmdError::Static(
                    "ERR Errors trying to SHUTDOWN. Check logs.",
                ));
            }
        }
    }
    ctx.flow = Flow::Shutdown;
    Ok(())
}
