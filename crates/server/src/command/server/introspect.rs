//! COMMAND and its subcommands: the command table described to clients,
//! in Redis 7.0's reply shapes. Everything here is read from the table
//! itself, never restated.

use ferrokv_resp::{DeferredKind, Reply};

use super::super::{acl, args, flags, CmdError, Command, Ctx};
use super::entry;

const F: u32 = flags::LOADING | flags::STALE;

const fn sub(
    name: &'static str,
    arity: i32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    entry(
        name,
        arity,
        F,
        acl::CONNECTION,
        handler,
        "server",
        summary,
        since,
    )
}

pub const COMMAND: Command = Command {
    subcommands: &[
        sub(
            "count",
            2,
            count,
            "Get total number of Redis commands",
            "2.8.13",
        ),
        sub(
            "docs",
            -2,
            docs,
            "Get array of specific Redis command documentation",
            "7.0.0",
        ),
        sub(
            "getkeys",
            -4,
            getkeys,
            "Extract keys given a full Redis command",
            "2.8.13",
        ),
        sub(
            "getkeysandflags",
            -4,
            getkeysandflags,
            "Extract keys and access flags given a full Redis command",
            "7.0.0",
        ),
        sub(
            "help",
            2,
            help,
            "Show helpful text about the different subcommands",
            "5.0.0",
        ),
        sub(
            "info",
            -2,
            info,
            "Get array of specific Redis command details, or all when no argument is given.",
            "2.8.13",
        ),
        sub(
            "list",
            -2,
            list,
            "Get an array of Redis command names",
            "7.0.0",
        ),
    ],
    ..entry(
        "command",
        -1,
        F,
        acl::CONNECTION,
        all,
        "server",
        "Get array of Redis command details",
        "2.8.13",
    )
};

/// COMMAND: the COMMAND INFO reply of every command.
fn all(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let table = &ctx.server.commands;
    ctx.reply.array(table.commands().count());
    for cmd in table.commands() {
        reply_info(ctx.reply, cmd, None);
    }
    Ok(())
}

/// COMMAND COUNT: the number of (top-level) commands.
fn count(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.int(ctx.server.commands.commands().count() as i64);
    Ok(())
}

/// COMMAND INFO [command-name ...]: one description per name (nil for
/// unknown names); every command when no name is given. `parent|sub`
/// names a subcommand.
fn info(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() == 2 {
        return all(ctx, argv);
    }
    ctx.reply.array(argv.len() - 2);
    for name in &argv[2..] {
        match lookup(ctx, name) {
            Some((cmd, parent)) => reply_info(ctx.reply, cmd, parent),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

/// Finds `name` or `parent|sub`, case-insensitively.
fn lookup(ctx: &Ctx<'_>, name: &[u8]) -> Option<(&'static Command, Option<&'static Command>)> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let first = ctx.server.commands.get(parts.next()?)?;
    match parts.next() {
        None => Some((first, None)),
        Some(sub) => first
            .subcommands
            .iter()
            .find(|s| args::is(sub, s.name))
            .map(|s| (s, Some(first))),
    }
}

fn full_name(cmd: &Command, parent: Option<&Command>) -> String {
    match parent {
        Some(p) => format!("{}|{}", p.name, cmd.name),
        None => cmd.name.to_string(),
    }
}

/// One command's description: name, arity, flags, first/last/step, ACL
/// categories, tips, key specs, subcommands.
fn reply_info(r: &mut Reply, cmd: &Command, parent: Option<&Command>) {
    r.array(10);
    r.bulk(full_name(cmd, parent).as_bytes());
    r.int(cmd.arity as i64);
    let names: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(f, _)| cmd.has(*f))
        .map(|(_, n)| *n)
        .collect();
    r.set(names.len());
    for n in names {
        r.simple(n);
    }
    r.int(cmd.keys.first as i64);
    r.int(cmd.keys.last as i64);
    r.int(cmd.keys.step as i64);
    let cats = cmd.acl_categories();
    let names: Vec<&str> = acl::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| cats & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    r.set(names.len());
    for n in names {
        r.simple(&format!("@{n}"));
    }
    r.set(0);
    reply_key_specs(r, cmd);
    if cmd.subcommands.is_empty() {
        r.set(0);
    } else {
        r.array(cmd.subcommands.len());
        for s in cmd.subcommands {
            reply_info(r, s, Some(cmd));
        }
    }
}

/// The access flags of a command's keys, derived from its read/write
/// nature (Redis's own specs are finer: OW/RM, insert/delete ...).
fn key_flags(cmd: &Command) -> [&'static str; 2] {
    if cmd.has(flags::WRITE) {
        ["RW", "update"]
    } else {
        ["RO", "access"]
    }
}

/// The 7.0 key-spec list: one `index` + `range` spec built from
/// (first, last, step), or none for keyless commands.
fn reply_key_specs(r: &mut Reply, cmd: &Command) {
    let k = cmd.keys;
    if k.first <= 0 {
        r.set(0);
        return;
    }
    r.set(1);
    r.map(3);
    r.bulk(b"flags");
    let kf = key_flags(cmd);
    r.set(kf.len());
    for f in kf {
        r.simple(f);
    }
    r.bulk(b"begin_search");
    r.map(2);
    r.bulk(b"type");
    r.bulk(b"index");
    r.bulk(b"spec");
    r.map(1);
    r.bulk(b"index");
    r.int(k.first as i64);
    r.bulk(b"find_keys");
    r.map(2);
    r.bulk(b"type");
    r.bulk(b"range");
    r.bulk(b"spec");
    r.map(3);
    r.bulk(b"lastkey");
    r.int(if k.last < 0 {
        k.last as i64
    } else {
        (k.last - k.first) as i64
    });
    r.bulk(b"keystep");
    r.int(k.step as i64);
    r.bulk(b"limit");
    r.int(0);
}

/// COMMAND DOCS [command-name ...]: a map from name to its summary, since
/// and group (and its subcommands' docs); every command without names.
/// Unknown names are left out.
fn docs(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let table = &ctx.server.commands;
    if argv.len() == 2 {
        ctx.reply.map(table.commands().count());
        for cmd in table.commands() {
            reply_doc(ctx.reply, cmd, None);
        }
        return Ok(());
    }
    let d = ctx.reply.deferred(DeferredKind::Map);
    let mut n = 0;
    for name in &argv[2..] {
        if let Some((cmd, parent)) = lookup(ctx, name) {
            reply_doc(ctx.reply, cmd, parent);
            n += 1;
        }
    }
    ctx.reply.set_deferred(d, n);
    Ok(())
}

fn reply_doc(r: &mut Reply, cmd: &Command, parent: Option<&Command>) {
    r.bulk(full_name(cmd, parent).as_bytes());
    r.map(3 + usize::from(!cmd.subcommands.is_empty()));
    r.bulk(b"summary");
    r.bulk(cmd.summary.as_bytes());
    r.bulk(b"since");
    r.bulk(cmd.since.as_bytes());
    r.bulk(b"group");
    r.bulk(cmd.group.as_bytes());
    if !cmd.subcommands.is_empty() {
        r.bulk(b"subcommands");
        r.map(cmd.subcommands.len());
        for s in cmd.subcommands {
            reply_doc(r, s, Some(cmd));
        }
    }
}

/// Resolves the command written in `argv[2..]` the way COMMAND GETKEYS
/// does, with its errors.
fn resolve_for_keys(
    ctx: &Ctx<'_>,
    argv: &[&[u8]],
) -> Result<(&'static Command, Vec<usize>), CmdError> {
    let target = &argv[2..];
    let r = ctx.server.commands.resolve(target).map_err(|e| match e {
        CmdError::WrongArity(_) => {
            CmdError::Static("ERR Invalid number of arguments specified for command")
        }
        _ => CmdError::Static("ERR Invalid command specified"),
    })?;
    let positions: Vec<usize> = r.cmd.key_positions(target.len()).collect();
    if positions.is_empty() {
        return Err(CmdError::Static("ERR The command has no key arguments"));
    }
    Ok((r.cmd, positions))
}

/// COMMAND GETKEYS command [arg ...]: the keys of that command line.
fn getkeys(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (_, positions) = resolve_for_keys(ctx, argv)?;
    ctx.reply.array(positions.len());
    for p in positions {
        ctx.reply.bulk(argv[2 + p]);
    }
    Ok(())
}

/// COMMAND GETKEYSANDFLAGS command [arg ...]: each key with its access
/// flags.
fn getkeysandflags(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (cmd, positions) = resolve_for_keys(ctx, argv)?;
    let kf = key_flags(cmd);
    ctx.reply.array(positions.len());
    for p in positions {
        ctx.reply.array(2);
        ctx.reply.bulk(argv[2 + p]);
        ctx.reply.set(kf.len());
        for f in kf {
            ctx.reply.simple(f);
        }
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]:
/// the names of commands and subcommands, optionally filtered.
fn list(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    enum Filter<'a> {
        All,
        Module,
        Category(Option<u32>),
        Pattern(&'a [u8]),
    }
    let filter = match argv {
        [_, _] => Filter::All,
        [_, _, by, kind, value] if args::is(by, "filterby") => {
            if args::is(kind, "module") {
                Filter::Module
            } else if args::is(kind, "aclcat") {
                let bit = acl::NAMES
                    .iter()
                    .position(|n| args::is(value, n))
                    .map(|i| 1u32 << i);
                Filter::Category(bit)
            } else if args::is(kind, "pattern") {
                Filter::Pattern(value)
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    let mut names = Vec::new();
    for cmd in ctx.server.commands.commands() {
        let entries =
            std::iter::once((cmd, None)).chain(cmd.subcommands.iter().map(|s| (s, Some(cmd))));
        for (c, parent) in entries {
            let name = full_name(c, parent);
            let keep = match filter {
                Filter::All => true,
                // No modules can be loaded, so no command belongs to one.
                Filter::Module => false,
                Filter::Category(bit) => bit.is_some_and(|b| c.acl_categories() & b != 0),
                Filter::Pattern(p) => crate::glob::matches(p, name.as_bytes(), true),
            };
            if keep {
                names.push(name);
            }
        }
    }
    ctx.reply.array(names.len());
    for n in names {
        ctx.reply.bulk(n.as_bytes());
    }
    Ok(())
}

/// COMMAND HELP.
fn help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    super::help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    );
    Ok(())
}
