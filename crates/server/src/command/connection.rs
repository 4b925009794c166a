//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET.

use super::{acl, flags, CmdError, Command, Ctx, Flow, NO_KEYS};

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
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
        since: "1.0.0",
    }
}

pub const COMMANDS: &[Command] = &[
    cmd("ping", -1, flags::FAST, ping, "Ping the server"),
    cmd(
        "quit",
        -1,
        flags::ALLOW_BUSY | flags::NO_AUTH | flags::FAST,
        quit,
        "Close the connection",
    ),
];

/// PING [message]: +PONG, or the message as a bulk string.
fn ping(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    match argv.len() {
        1 => ctx.reply.simple("PONG"),
        2 => ctx.reply.bulk(argv[1]),
        _ => return Err(CmdError::WrongArity("ping".into())),
    }
    Ok(())
}

/// QUIT: +OK, then the connection closes.
fn quit(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.ok();
    ctx.flow = Flow::Close;
    Ok(())
}
