//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! While a client is in MULTI the dispatcher queues its commands (see
//! net::dispatch). EXEC runs them so that no other client's command can
//! see or change their keys in between, on any core, in one of two ways:
//! - When every queued command names its keys in the table's key spec
//!   and touches nothing else ([`keyed`]), EXEC locks the shards of those
//!   keys and of the watched keys, in order, for the whole transaction
//!   (store::Keyspace::prelock), under its loop's shared gate: commands
//!   on other keys go on in parallel, which no client can tell from a
//!   serial order.
//! - Otherwise it takes the exclusive gate (its table entry carries
//!   `flags::EXCLUSIVE`; crate::scripting::execute decides).
//!
//! Errors found while queueing abort the transaction with EXECABORT;
//! errors while running are replied in place.

use std::sync::atomic::Ordering::Relaxed;

use super::{acl, flags, CmdError, Command, Ctx, NO_KEYS};
use crate::client::{Client, Multi};
use crate::store::key_hash;

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: super::Keys,
    handler: super::Handler,
    summary: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys,
        acl: acl::TRANSACTION,
        handler,
        subcommands: &[],
        group: "transactions",
        summary,
        since: "1.2.0",
    }
}

const CONTROL: u32 = flags::NOSCRIPT | flags::LOADING | flags::STALE | flags::TXN_CONTROL;

pub const COMMANDS: &[Command] = &[
    cmd(
        "multi",
        1,
        CONTROL | flags::FAST | flags::ALLOW_BUSY,
        NO_KEYS,
        multi,
        "Start a transaction",
    ),
    cmd(
        "exec",
        1,
        CONTROL | flags::SKIP_SLOWLOG | flags::EXCLUSIVE,
        NO_KEYS,
        exec,
        "Execute all commands issued after MULTI",
    ),
    cmd(
        "discard",
        1,
        CONTROL | flags::FAST | flags::ALLOW_BUSY,
        NO_KEYS,
        discard,
        "Discard all commands issued after MULTI",
    ),
    cmd(
        "watch",
        -2,
        CONTROL | flags::FAST | flags::ALLOW_BUSY,
        super::Keys {
            first: 1,
            last: -1,
            step: 1,
        },
        watch,
        "Watch the given keys to determine execution of the MULTI/EXEC block",
    ),
    cmd(
        "unwatch",
        1,
        flags::NOSCRIPT | flags::LOADING | flags::STALE | flags::FAST | flags::ALLOW_BUSY,
        NO_KEYS,
        unwatch,
        "Forget about all watched keys",
    ),
];

/// Records what EXEC will lock for a command just queued in database `db`
/// (queued SELECTs do not run, so `db` is EXEC's too): the shards of its
/// keys, or that the transaction needs the exclusive gate.
pub fn note_queued(multi: &mut Multi, db: usize, cmd: &Command, argv: &[&[u8]]) {
    if multi.unkeyed {
        return;
    }
    if !keyed(cmd) {
        multi.unkeyed = true;
        multi.shards = Vec::new();
        return;
    }
    multi.shards.extend(
        cmd.key_positions(argv.len())
            .map(|i| (db, key_hash(argv[i]).0)),
    );
}

/// Whether a queued command lets EXEC lock only the shards of the keys its
/// key spec names: it has keys at fixed positions, works in the client's
/// database only (not MOVE, COPY), and has no effect beyond its keys that
/// another client could see between two commands of the transaction (no
/// scripts, pub/sub or admin commands).
fn keyed(cmd: &Command) -> bool {
    const BEYOND_KEYS: u32 = flags::MOVABLE_KEYS
        | flags::EXCLUSIVE
        | flags::SCRIPT_THREAD
        | flags::PUBSUB
        | flags::ADMIN
        | flags::NO_MULTI
        | flags::TXN_CONTROL;
    cmd.keys.first > 0 && cmd.flags & BEYOND_KEYS == 0 && !matches!(cmd.name, "move" | "copy")
}

/// Whether this EXEC needs the exclusive gate (see the module docs). With
/// keyspace notifications on it always does: subscribers would otherwise
/// see other clients' events between the transaction's.
pub fn exec_needs_gate(server: &crate::Server, client: &Client) -> bool {
    server.config.notify_flags.load(Relaxed) != 0
        || client
            .multi
            .as_ref()
            .is_none_or(|m| m.unkeyed && !m.aborted)
}

/// The (database, shard) pairs a keyed EXEC locks: its commands' keys
/// (noted as they were queued) and the watched keys.
fn shards_of(ctx: &Ctx<'_>, queued: &mut Multi) -> Vec<(usize, usize)> {
    let mut want = std::mem::take(&mut queued.shards);
    want.extend(ctx.client.watched.iter().map(|(d, k)| (*d, key_hash(k).0)));
    want
}

/// MULTI: +OK; the following commands are queued until EXEC.
fn multi(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Multi {
        commands: std::mem::take(&mut ctx.client.spare_queue),
        ..Default::default()
    });
    ctx.reply.ok();
    Ok(())
}

/// DISCARD: +OK, dropping the queued commands and the watches.
fn discard(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let Some(queued) = ctx.client.multi.take() else {
        return Err(CmdError::Static("ERR DISCARD without MULTI"));
    };
    ctx.client.spare_queue = queued.commands.emptied().unwrap_or_default();
    ctx.client.unwatch_all(ctx.server);
    ctx.reply.ok();
    Ok(())
}

/// EXEC: an array with each queued command's reply; a null array when a
/// watched key changed; EXECABORT when queueing failed.
fn exec(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let Some(mut queued) = ctx.client.multi.take() else {
        return Err(CmdError::Static("ERR EXEC without MULTI"));
    };
    let keyspace = &ctx.server.keyspace;
    let shards =
        (!queued.unkeyed && !queued.aborted).then(|| keyspace.prelock(shards_of(ctx, &mut queued)));
    let dirty = ctx.client.cas_dirty.load(Relaxed) || watched_key_expired(ctx);
    ctx.client.unwatch_all(ctx.server);
    if queued.aborted {
        return Err(CmdError::Static(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if dirty {
        ctx.reply.null_array();
        return Ok(());
    }
    ctx.reply.array(queued.commands.len());
    for (r, argv) in queued.commands.iter() {
        let flow = super::run_in_transaction(ctx.server, ctx.client, ctx.reply, r, &argv);
        if flow != super::Flow::Continue {
            ctx.flow = flow;
        }
    }
    if shards.is_some() {
        // The transaction's place in the AOF, while its keys are still
        // locked: later writers of those keys come after it.
        ctx.take_ticket();
    }
    ctx.client.spare_queue = queued.commands.emptied().unwrap_or_default();
    Ok(())
}

/// Redis aborts EXEC when a watched key has expired since WATCH, even if
/// no command has deleted it yet.
fn watched_key_expired(ctx: &mut Ctx<'_>) -> bool {
    let watched = ctx.client.watched.clone();
    watched.iter().any(|(db, key)| {
        let mut locked = ctx.server.keyspace.lock(*db, &[key], ctx.now_ms);
        let gone = locked.get_in(*db, key).is_none() && !locked.expired.is_empty();
        ctx.finish(locked);
        gone
    })
}

/// WATCH key [key ...]: +OK.
fn watch(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    for key in &argv[1..] {
        if ctx.client.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        ctx.server
            .watches
            .watch(ctx.client.shared.id, &ctx.client.cas_dirty, db, key);
        ctx.client.watched.push((db, key.to_vec()));
    }
    ctx.reply.ok();
    Ok(())
}

/// UNWATCH: +OK.
fn unwatch(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.client.unwatch_all(ctx.server);
    ctx.reply.ok();
    Ok(())
}
