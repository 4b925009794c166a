//! Server commands: COMMAND, CONFIG, INFO, CLIENT, SLOWLOG, LATENCY, DEBUG,
//! TIME, SHUTDOWN.

use super::{flags, CmdError, Command, Ctx, Flow, NO_KEYS};

pub const COMMANDS: &[Command] = &[Command {
    name: "shutdown",
    arity: -1,
    flags: flags::ADMIN
        | flags::NOSCRIPT
        | flags::LOADING
        | flags::STALE
        | flags::NO_MULTI
        | flags::ALLOW_BUSY,
    keys: NO_KEYS,
    acl: 0,
    handler: shutdown,
    subcommands: &[],
    group: "server",
    summary: "Synchronously save the dataset to disk and then shut down the server",
    since: "1.0.0",
}];

/// SHUTDOWN [NOSAVE|SAVE]: no reply; the server stops.
fn shutdown(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.flow = Flow::Shutdown;
    Ok(())
}
