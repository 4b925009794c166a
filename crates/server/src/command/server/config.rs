//! CONFIG GET/SET/RESETSTAT/REWRITE/HELP over the directive table in
//! crate::config.

use super::super::{flags, CmdError, Command, Ctx};
use super::{container, entry};

const ADMIN: u32 = flags::ADMIN | flags::NOSCRIPT | flags::LOADING | flags::STALE;

pub const CONFIG: Command = container(
    "config",
    &[
        entry(
            "get",
            -3,
            ADMIN,
            0,
            get,
            "server",
            "Get the values of configuration parameters",
            "2.0.0",
        ),
        entry(
            "set",
            -4,
            ADMIN,
            0,
            set,
            "server",
            "Set configuration parameters to the given values",
            "2.0.0",
        ),
        entry(
            "resetstat",
            2,
            ADMIN,
            0,
            resetstat,
            "server",
            "Reset the stats returned by INFO",
            "2.0.0",
        ),
        entry(
            "rewrite",
            2,
            ADMIN,
            0,
            rewrite,
            "server",
            "Rewrite the configuration file with the in memory configuration",
            "2.8.0",
        ),
        entry(
            "help",
            2,
            flags::LOADING | flags::STALE,
            0,
            help,
            "server",
            "Show helpful text about the different subcommands",
            "5.0.0",
        ),
    ],
    "server",
    "A container for server configuration commands",
    "2.0.0",
);

/// CONFIG GET pattern [pattern ...]: a map of matching directives to their
/// values. A pattern without glob characters is an exact, case-insensitive
/// name and is echoed as written, as Redis does; each directive appears
/// once.
fn get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut found: Vec<(&'static str, Vec<u8>, String)> = Vec::new();
    for pattern in &argv[2..] {
        let exact = !pattern.iter().any(|b| matches!(b, b'[' | b'*' | b'?'));
        for (name, value) in ctx.server.config.matching(&[pattern]) {
            if exact && !pattern.eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
            if found.iter().any(|(n, _, _)| *n == name) {
                continue;
            }
            let shown = if exact {
                pattern.to_vec()
            } else {
                name.as_bytes().to_vec()
            };
            found.push((name, shown, value));
        }
    }
    ctx.reply.map(found.len());
    for (_, shown, value) in found {
        ctx.reply.bulk(&shown);
        ctx.reply.bulk(value.as_bytes());
    }
    Ok(())
}

/// CONFIG SET name value [name value ...]: +OK, all or nothing.
fn set(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if !argv.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let pairs: Vec<(&[u8], &[u8])> = argv[2..].chunks_exact(2).map(|p| (p[0], p[1])).collect();
    ctx.server.config.set(&pairs).map_err(CmdError::Owned)?;
    crate::persist::aof::config_changed(ctx.server);
    ctx.reply.ok();
    Ok(())
}

/// CONFIG RESETSTAT: +OK. Zeroes what Redis's resetServerStats and
/// resetCommandTableStats zero; the slow log and latency samples stay.
fn resetstat(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.stats.reset();
    ctx.server.commands.reset_stats();
    ctx.reply.ok();
    Ok(())
}

/// CONFIG REWRITE: +OK once the config file holds the live configuration.
fn rewrite(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.config.rewrite().map_err(|e| {
        tracing::warn!("CONFIG REWRITE failed: {e}");
        CmdError::Owned(e)
    })?;
    tracing::info!("CONFIG REWRITE executed with success.");
    ctx.reply.ok();
    Ok(())
}

/// CONFIG HELP.
fn help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    super::help(
        ctx,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}
