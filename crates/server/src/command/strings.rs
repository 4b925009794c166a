//! String commands: GET, SET and the rest of Redis's string family.
//!
//! Values are stored with Redis's encodings (`int`, `embstr`, `raw`, see
//! store::entry); every reply is built from the bytes a client would read
//! back with GET.

use super::{acl, flags, CmdError, Command, Ctx, Keys};
use crate::store::{Object, Value, ValueRef};

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: Keys,
    handler: super::Handler,
    summary: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys,
        acl: acl::STRING,
        handler,
        subcommands: &[],
        group: "string",
        summary,
        since: "1.0.0",
    }
}

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    cmd(
        "get",
        2,
        flags::READONLY | flags::FAST,
        ONE_KEY,
        get,
        "Get the value of a key",
    ),
    cmd(
        "set",
        -3,
        flags::WRITE | flags::DENYOOM,
        ONE_KEY,
        set,
        "Set the string value of a key",
    ),
];

/// Appends the string form of a value to the reply, or fails with WRONGTYPE.
pub fn reply_string(ctx: &mut Ctx<'_>, v: ValueRef<'_>) -> Result<(), CmdError> {
    match v {
        ValueRef::Int(n) => ctx.reply.bulk_int(n),
        ValueRef::Emb(b) => ctx.reply.bulk(b),
        ValueRef::Obj(Object::Raw(b)) => ctx.reply.bulk(b),
    }
    Ok(())
}

/// GET key: bulk string, nil when missing, WRONGTYPE for other types.
fn get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&argv[1..2]);
    let found = match locked.get(argv[1]) {
        Some(e) => {
            reply_string(ctx, e.value())?;
            true
        }
        None => {
            ctx.reply.null();
            false
        }
    };
    ctx.server.stats.hit(found);
    ctx.finish(locked);
    Ok(())
}

/// SET key value: +OK.
fn set(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() != 3 {
        return Err(CmdError::Syntax);
    }
    let mut locked = ctx.lock(&argv[1..2]);
    locked.set(argv[1], Value::string(argv[2]), None);
    ctx.modified(argv[1]);
    ctx.finish(locked);
    ctx.reply.ok();
    Ok(())
}
