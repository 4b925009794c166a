//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL,
//! FCALL_RO, FUNCTION. The VM and how scripts share the server with other
//! clients are in crate::scripting.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;

use super::persistence::payload_error;
use super::server::{container, entry, help, subcommand_syntax};
use super::{acl, args, flags, CmdError, Command, Ctx, NO_KEYS};
use crate::persist::rdb;
use crate::scripting::{script_flags, sha1_hex, RestorePolicy, Target};

const RUN: u32 = flags::NOSCRIPT
    | flags::STALE
    | flags::SKIP_MONITOR
    | flags::NO_MANDATORY_KEYS
    | flags::MOVABLE_KEYS
    | flags::EXCLUSIVE
    | flags::SCRIPT_THREAD;

const fn run_cmd(
    name: &'static str,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity: -3,
        flags,
        keys: NO_KEYS,
        acl: acl::SCRIPTING,
        handler,
        subcommands: &[],
        group: "scripting",
        summary,
        since,
    }
}

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
        acl::SCRIPTING,
        handler,
        "scripting",
        summary,
        since,
    )
}

const WRITE_ADMIN: u32 = flags::WRITE | flags::NOSCRIPT;

pub const COMMANDS: &[Command] = &[
    run_cmd("eval", RUN, eval, "Execute a Lua script server side", "2.6.0"),
    run_cmd(
        "evalsha",
        RUN,
        eval,
        "Execute a Lua script server side",
        "2.6.0",
    ),
    run_cmd(
        "eval_ro",
        RUN | flags::READONLY,
        eval,
        "Execute a read-only Lua script server side",
        "7.0.0",
    ),
    run_cmd(
        "evalsha_ro",
        RUN | flags::READONLY,
        eval,
        "Execute a read-only Lua script server side",
        "7.0.0",
    ),
    run_cmd("fcall", RUN, fcall, "Invoke a function", "7.0.0"),
    run_cmd(
        "fcall_ro",
        RUN | flags::READONLY,
        fcall,
        "Invoke a read-only function",
        "7.0.0",
    ),
    container(
        "script",
        &[
            sub(
                "load",
                3,
                flags::NOSCRIPT | flags::STALE,
                script_load,
                "Load the specified Lua script into the script cache.",
                "2.6.0",
            ),
            sub(
                "exists",
                -3,
                flags::NOSCRIPT,
                script_exists,
                "Check existence of scripts in the script cache.",
                "2.6.0",
            ),
            sub(
                "flush",
                -2,
                flags::NOSCRIPT,
                script_flush,
                "Remove all the scripts from the script cache.",
                "2.6.0",
            ),
            sub(
                "kill",
                2,
                flags::NOSCRIPT | flags::ALLOW_BUSY,
                script_kill,
                "Kill the script currently in execution.",
                "2.6.0",
            ),
            sub(
                "help",
                2,
                flags::LOADING | flags::STALE,
                script_help,
                "Show helpful text about the different subcommands",
                "5.0.0",
            ),
        ],
        "scripting",
        "A container for Lua scripts management commands",
        "2.6.0",
    ),
    container(
        "function",
        &[
            sub(
                "load",
                -3,
                WRITE_ADMIN | flags::DENYOOM,
                function_load,
                "Create a function with the given arguments (name, code, description)",
                "7.0.0",
            ),
            sub(
                "delete",
                3,
                WRITE_ADMIN,
                function_delete,
                "Delete a function by name",
                "7.0.0",
            ),
            sub(
                "flush",
                -2,
                WRITE_ADMIN,
                function_flush,
                "Deleting all functions",
                "7.0.0",
            ),
            sub(
                "dump",
                2,
                flags::NOSCRIPT,
                function_dump,
                "Dump all functions into a serialized binary payload",
                "7.0.0",
            ),
            sub(
                "restore",
                -3,
                WRITE_ADMIN | flags::DENYOOM,
                function_restore,
                "Restore all the functions on the given payload",
                "7.0.0",
            ),
            sub(
                "list",
                -2,
                flags::NOSCRIPT,
                function_list,
                "List information about all the functions",
                "7.0.0",
            ),
            sub(
                "stats",
                2,
                flags::NOSCRIPT | flags::ALLOW_BUSY,
                function_stats,
                "Return information about the function currently running (name, description, duration)",
                "7.0.0",
            ),
            sub(
                "kill",
                2,
                flags::NOSCRIPT | flags::ALLOW_BUSY,
                function_kill,
                "Kill the function currently in execution.",
                "7.0.0",
            ),
            sub(
                "help",
                2,
                flags::LOADING | flags::STALE,
                function_help,
                "Show helpful text about the different subcommands",
                "7.0.0",
            ),
        ],
        "scripting",
        "A container for function commands",
        "7.0.0",
    ),
];

type KeysAndArgs<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);

/// Splits `<numkeys> key... arg...` (argv[2] onwards) with Redis's checks.
fn split_keys<'a>(argv: &'a [&'a [u8]]) -> Result<KeysAndArgs<'a>, CmdError> {
    let numkeys = args::int(argv[2])?;
    if numkeys > (argv.len() - 3) as i64 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::Static("ERR Number of keys can't be negative"));
    }
    Ok(argv[3..].split_at(numkeys as usize))
}

const RO_WITH_WRITE_FLAG: CmdError =
    CmdError::Static("ERR Can not execute a script with write flag using *_ro command.");

/// EVAL script numkeys [key ...] [arg ...], EVALSHA sha1 ..., and their _RO
/// variants: the script's reply converted from Lua, or its error; NOSCRIPT
/// for an unknown SHA1.
fn eval(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (keys, rest) = split_keys(argv)?;
    let name = argv[0];
    let by_sha = name.len() >= 7 && name[..7].eq_ignore_ascii_case(b"evalsha");
    let ro = name.len() >= 3 && name[name.len() - 3..].eq_ignore_ascii_case(b"_ro");
    let scripting = &ctx.server.scripting;
    // A SHA1 is looked up lower-cased, in place: no allocation per call.
    let mut lower = [0u8; 40];
    scripting.with_engine(|engine| {
        let (sha, (function, sflags)) = if by_sha {
            let found = if argv[1].len() == lower.len() {
                lower.copy_from_slice(argv[1]);
                lower.make_ascii_lowercase();
                std::str::from_utf8(&lower)
                    .ok()
                    .and_then(|sha| Some((Cow::Borrowed(sha), engine.script(sha)?)))
            } else {
                None
            };
            found.ok_or(CmdError::Static(
                "NOSCRIPT No matching script. Please use EVAL.",
            ))?
        } else {
            let sha = sha1_hex(argv[1]);
            let found = engine.load_script(&sha, argv[1])?;
            (Cow::Owned(sha), found)
        };
        let compat = sflags & script_flags::EVAL_COMPAT != 0;
        let no_writes = sflags & script_flags::NO_WRITES != 0;
        if ro && !compat && !no_writes {
            return Err(RO_WITH_WRITE_FLAG);
        }
        let target = Target {
            name: &sha,
            function,
            eval: true,
            read_only: ro || no_writes,
            keys,
            args: rest,
        };
        scripting.run(ctx, engine, argv, target)
    })
}

/// FCALL function numkeys [key ...] [arg ...] and FCALL_RO: the function's
/// reply, or its error.
fn fcall(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (keys, rest) = split_keys(argv)?;
    let ro = argv[0].eq_ignore_ascii_case(b"fcall_ro");
    let name = String::from_utf8_lossy(argv[1]).into_owned();
    let scripting = &ctx.server.scripting;
    scripting.with_engine(|engine| {
        let Some((function, fflags)) = engine.function(&name) else {
            return Err(CmdError::Static("ERR Function not found"));
        };
        let no_writes = fflags & script_flags::NO_WRITES != 0;
        if ro && !no_writes {
            return Err(RO_WITH_WRITE_FLAG);
        }
        let target = Target {
            name: &name,
            function,
            eval: false,
            read_only: ro || no_writes,
            keys,
            args: rest,
        };
        scripting.run(ctx, engine, argv, target)
    })
}

/// SCRIPT LOAD script: the script's SHA1 as a bulk string.
fn script_load(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let sha = sha1_hex(argv[2]);
    ctx.server
        .scripting
        .with_engine(|engine| engine.load_script(&sha, argv[2]).map(|_| ()))?;
    ctx.reply.bulk(sha.as_bytes());
    Ok(())
}

/// SCRIPT EXISTS sha1 [sha1 ...]: an array of 1 (cached) or 0.
fn script_exists(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let found: Vec<bool> = ctx.server.scripting.with_engine(|engine| {
        Ok(argv[2..]
            .iter()
            .map(|sha| {
                engine
                    .script(&String::from_utf8_lossy(sha).to_ascii_lowercase())
                    .is_some()
            })
            .collect())
    })?;
    ctx.reply.array(found.len());
    for f in found {
        ctx.reply.int(f as i64);
    }
    Ok(())
}

/// The optional ASYNC|SYNC of SCRIPT FLUSH and FUNCTION FLUSH (both flush
/// at once: the VM's memory is freed by its collector either way).
fn flush_mode(argv: &[&[u8]], error: &'static str) -> Result<(), CmdError> {
    match argv.len() {
        2 => Ok(()),
        3 if args::is(argv[2], "sync") || args::is(argv[2], "async") => Ok(()),
        _ => Err(CmdError::Static(error)),
    }
}

/// SCRIPT FLUSH [ASYNC|SYNC]: +OK.
fn script_flush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    flush_mode(argv, "ERR SCRIPT FLUSH only support SYNC|ASYNC option")?;
    ctx.server.scripting.with_engine(|engine| {
        engine.flush_scripts();
        Ok(())
    })?;
    ctx.reply.ok();
    Ok(())
}

/// SCRIPT KILL: +OK once the running read-only script is told to stop;
/// NOTBUSY, UNKILLABLE or BUSY (a function runs) otherwise.
fn script_kill(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.scripting.busy.kill(true)?;
    ctx.reply.ok();
    Ok(())
}

/// SCRIPT HELP.
fn script_help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    help(
        ctx,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    );
    Ok(())
}

/// FUNCTION LOAD [REPLACE] code: the library name as a bulk string.
fn function_load(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut replace = false;
    for arg in &argv[2..argv.len() - 1] {
        if args::is(arg, "replace") {
            replace = true;
        } else {
            return Err(CmdError::Owned(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(arg)
            )));
        }
    }
    let code = argv[argv.len() - 1];
    let name = ctx
        .server
        .scripting
        .with_engine(|engine| engine.load_library(code, replace))?;
    ctx.modified_functions();
    ctx.reply.bulk(name.as_bytes());
    Ok(())
}

/// FUNCTION DELETE library: +OK, or an error if there is no such library.
fn function_delete(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let name = String::from_utf8_lossy(argv[2]).into_owned();
    let found = ctx
        .server
        .scripting
        .with_engine(|engine| Ok(engine.delete_library(&name)))?;
    if !found {
        return Err(CmdError::Static("ERR Library not found"));
    }
    ctx.modified_functions();
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION FLUSH [ASYNC|SYNC]: +OK.
fn function_flush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    flush_mode(argv, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option")?;
    ctx.server.scripting.with_engine(|engine| {
        engine.flush_functions();
        Ok(())
    })?;
    ctx.modified_functions();
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION DUMP: every library's code in Redis's payload format (RDB
/// library records, RDB version, CRC-64) as a bulk string.
fn function_dump(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let compress = ctx.server.config.get("rdbcompression") == "yes";
    let codes = ctx.server.scripting.library_codes();
    ctx.reply.bulk(&rdb::dump_functions(&codes, compress));
    Ok(())
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]: +OK once every library
/// of a FUNCTION DUMP payload is loaded (APPEND, the default, fails on a
/// library that exists; REPLACE replaces it; FLUSH deletes all first);
/// otherwise an error and nothing changes.
fn function_restore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let policy =
        match argv {
            [_, _, _] => RestorePolicy::Append,
            [_, _, _, p] if args::is(p, "append") => RestorePolicy::Append,
            [_, _, _, p] if args::is(p, "replace") => RestorePolicy::Replace,
            [_, _, _, p] if args::is(p, "flush") => RestorePolicy::Flush,
            [_, _, _, _] => return Err(CmdError::Static(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )),
            _ => return Err(subcommand_syntax(argv)),
        };
    let codes = rdb::restore_functions(argv[2]).map_err(payload_error)?;
    let codes = codes
        .into_iter()
        .map(|c| c.map_err(|e| CmdError::Owned(format!("ERR {e}"))));
    ctx.server
        .scripting
        .with_engine(|engine| engine.restore_libraries(codes, policy))?;
    ctx.modified_functions();
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]: for each library a map
/// of its name, engine, functions (name, description, flags) and, with
/// WITHCODE, its code.
fn function_list(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (mut pattern, mut with_code) = (None, false);
    let mut i = 2;
    while i < argv.len() {
        if args::is(argv[i], "withcode") {
            with_code = true;
        } else if args::is(argv[i], "libraryname") {
            if pattern.is_some() {
                return Err(CmdError::Owned(format!(
                    "ERR Unknown argument {}",
                    String::from_utf8_lossy(argv[i])
                )));
            }
            i += 1;
            let Some(p) = argv.get(i) else {
                return Err(CmdError::Static("ERR library name argument was not given"));
            };
            pattern = Some(*p);
        } else {
            return Err(CmdError::Owned(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(argv[i])
            )));
        }
        i += 1;
    }
    let reply = &mut *ctx.reply;
    ctx.server.scripting.with_engine(|engine| {
        let libs: Vec<_> = engine
            .libraries
            .iter()
            .filter(|(name, _)| {
                pattern.is_none_or(|p| crate::glob::matches(p, name.as_bytes(), false))
            })
            .collect();
        reply.array(libs.len());
        for (name, lib) in libs {
            reply.map(if with_code { 4 } else { 3 });
            reply.bulk(b"library_name");
            reply.bulk(name.as_bytes());
            reply.bulk(b"engine");
            reply.bulk(b"LUA");
            reply.bulk(b"functions");
            reply.array(lib.functions.len());
            for f in &lib.functions {
                reply.map(3);
                reply.bulk(b"name");
                reply.bulk(f.name.as_bytes());
                reply.bulk(b"description");
                match &f.description {
                    Some(d) => reply.bulk(d),
                    None => reply.null(),
                }
                reply.bulk(b"flags");
                let names: Vec<&str> = script_flags::NAMES
                    .iter()
                    .filter(|(bit, _)| f.flags & bit != 0)
                    .map(|(_, n)| *n)
                    .collect();
                reply.set(names.len());
                for n in names {
                    reply.simple(n);
                }
            }
            if with_code {
                reply.bulk(b"library_code");
                reply.bulk(&lib.code);
            }
        }
        Ok(())
    })
}

/// FUNCTION STATS: the running function (name, command, duration_ms) or
/// nil, and per engine the library and function counts.
fn function_stats(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let scripting = &ctx.server.scripting;
    let reply = &mut *ctx.reply;
    reply.map(2);
    reply.bulk(b"running_script");
    scripting.busy.with_running(|running| match running {
        Some(r) => {
            reply.map(3);
            reply.bulk(b"name");
            reply.bulk(r.name.as_bytes());
            reply.bulk(b"command");
            reply.array(r.argv.len());
            for a in &r.argv {
                reply.bulk(a);
            }
            reply.bulk(b"duration_ms");
            reply.int((crate::now_ms() - r.started).max(0));
        }
        None => reply.null(),
    });
    reply.bulk(b"engines");
    reply.map(1);
    reply.bulk(b"LUA");
    reply.map(2);
    reply.bulk(b"libraries_count");
    reply.int(scripting.figures.libraries.load(Relaxed) as i64);
    reply.bulk(b"functions_count");
    reply.int(scripting.figures.functions.load(Relaxed) as i64);
    Ok(())
}

/// FUNCTION KILL: +OK once the running read-only function is told to
/// stop; NOTBUSY, UNKILLABLE or BUSY (an EVAL script runs) otherwise.
fn function_kill(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.scripting.busy.kill(false)?;
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION HELP.
fn function_help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    help(
        ctx,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    );
    Ok(())
}
