//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH
//! and the PUBSUB introspection container, over crate::pubsub.
//!
//! Without a cluster, shard channels are a namespace of their own, as in a
//! standalone Redis 7.0: SPUBLISH reaches SSUBSCRIBE subscribers only and
//! patterns never match them.

use super::{flags, CmdError, Command, Ctx, Family, Keys, NO_KEYS};
use crate::pubsub::Kind;

const SUBSCRIBE: u32 =
    flags::PUBSUB | flags::NOSCRIPT | flags::LOADING | flags::STALE | flags::SUBSCRIBER;
const PUBLISH: u32 = flags::PUBSUB | flags::LOADING | flags::STALE | flags::FAST;
const INTROSPECT: u32 = flags::PUBSUB | flags::LOADING | flags::STALE;

/// Shard channels sit where keys do, so cluster routing can find them.
const ALL_ARGS: Keys = Keys {
    first: 1,
    last: -1,
    step: 1,
};
const FIRST_ARG: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};

#[allow(clippy::too_many_arguments)]
const FAMILY: Family = Family {
    acl: 0,
    group: "pubsub",
};

pub const COMMANDS: &[Command] = &[
    FAMILY.cmd(
        "subscribe",
        -2,
        SUBSCRIBE,
        NO_KEYS,
        subscribe,
        "Listen for messages published to the given channels",
        "2.0.0",
    ),
    FAMILY.cmd(
        "unsubscribe",
        -1,
        SUBSCRIBE,
        NO_KEYS,
        unsubscribe,
        "Stop listening for messages posted to the given channels",
        "2.0.0",
    ),
    FAMILY.cmd(
        "psubscribe",
        -2,
        SUBSCRIBE,
        NO_KEYS,
        psubscribe,
        "Listen for messages published to channels matching the given patterns",
        "2.0.0",
    ),
    FAMILY.cmd(
        "punsubscribe",
        -1,
        SUBSCRIBE,
        NO_KEYS,
        punsubscribe,
        "Stop listening for messages posted to channels matching the given patterns",
        "2.0.0",
    ),
    FAMILY.cmd(
        "publish",
        3,
        PUBLISH,
        NO_KEYS,
        publish,
        "Post a message to a channel",
        "2.0.0",
    ),
    FAMILY.cmd(
        "ssubscribe",
        -2,
        SUBSCRIBE,
        ALL_ARGS,
        ssubscribe,
        "Listen for messages published to the given shard channels",
        "7.0.0",
    ),
    FAMILY.cmd(
        "sunsubscribe",
        -1,
        SUBSCRIBE,
        ALL_ARGS,
        sunsubscribe,
        "Stop listening for messages posted to the given shard channels",
        "7.0.0",
    ),
    FAMILY.cmd(
        "spublish",
        3,
        PUBLISH,
        FIRST_ARG,
        spublish,
        "Post a message to a shard channel",
        "7.0.0",
    ),
    Command {
        name: "pubsub",
        arity: -2,
        flags: 0,
        keys: NO_KEYS,
        acl: 0,
        handler: without_subcommand,
        subcommands: &[
            FAMILY.cmd(
                "channels",
                -2,
                INTROSPECT,
                NO_KEYS,
                channels,
                "List active channels",
                "2.8.0",
            ),
            FAMILY.cmd(
                "help",
                2,
                flags::LOADING | flags::STALE,
                NO_KEYS,
                help,
                "Show helpful text about the different subcommands",
                "6.2.0",
            ),
            FAMILY.cmd(
                "numpat",
                2,
                INTROSPECT,
                NO_KEYS,
                numpat,
                "Get the count of unique patterns pattern subscriptions",
                "2.8.0",
            ),
            FAMILY.cmd(
                "numsub",
                -2,
                INTROSPECT,
                NO_KEYS,
                numsub,
                "Get the count of subscribers for channels",
                "2.8.0",
            ),
            FAMILY.cmd(
                "shardchannels",
                -2,
                INTROSPECT,
                NO_KEYS,
                shardchannels,
                "List active shard channels",
                "7.0.0",
            ),
            FAMILY.cmd(
                "shardnumsub",
                -2,
                INTROSPECT,
                NO_KEYS,
                shardnumsub,
                "Get the count of subscribers for shard channels",
                "7.0.0",
            ),
        ],
        group: "pubsub",
        summary: "A container for Pub/Sub commands",
        since: "2.8.0",
    },
];

/// Subscribes to each name in turn, one confirmation per name (repeats
/// included), as Redis's (p|s)subscribeCommand.
fn subscribe_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], kind: Kind) -> Result<(), CmdError> {
    for name in &argv[1..] {
        ctx.server
            .pubsub
            .subscribe(&ctx.client.shared, kind, name, ctx.reply);
    }
    Ok(())
}

/// Leaves the named subscriptions, or all of `kind` without names.
fn unsubscribe_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], kind: Kind) -> Result<(), CmdError> {
    ctx.server
        .pubsub
        .unsubscribe(&ctx.client.shared, kind, &argv[1..], Some(ctx.reply));
    Ok(())
}

/// SUBSCRIBE channel [channel ...]: per channel a push
/// `[subscribe, channel, count]`, count being channels plus patterns.
fn subscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    subscribe_generic(ctx, argv, Kind::Channel)
}

/// UNSUBSCRIBE [channel ...]: per channel (every subscribed one when none
/// is named) a push `[unsubscribe, channel, count]`; a single one with a
/// nil channel when there is nothing to leave.
fn unsubscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    unsubscribe_generic(ctx, argv, Kind::Channel)
}

/// PSUBSCRIBE pattern [pattern ...]: per pattern a push
/// `[psubscribe, pattern, count]`.
fn psubscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    subscribe_generic(ctx, argv, Kind::Pattern)
}

/// PUNSUBSCRIBE [pattern ...]: like UNSUBSCRIBE, for patterns.
fn punsubscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    unsubscribe_generic(ctx, argv, Kind::Pattern)
}

/// SSUBSCRIBE shardchannel [shardchannel ...]: per channel a push
/// `[ssubscribe, channel, count]`, count being shard channels only.
fn ssubscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    subscribe_generic(ctx, argv, Kind::Shard)
}

/// SUNSUBSCRIBE [shardchannel ...]: like UNSUBSCRIBE, for shard channels.
fn sunsubscribe(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    unsubscribe_generic(ctx, argv, Kind::Shard)
}

/// Publishes and replies with the number of clients that received it.
fn publish_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], kind: Kind) -> Result<(), CmdError> {
    let limits = ctx.server.config.pubsub_limits();
    let me = Some((ctx.client.shared.id, &mut *ctx.reply));
    let n = ctx
        .server
        .pubsub
        .publish(kind, argv[1], argv[2], limits, me);
    ctx.reply.int(n as i64);
    Ok(())
}

/// PUBLISH channel message: the number of receivers (channel subscribers
/// plus matching pattern subscriptions).
fn publish(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    publish_generic(ctx, argv, Kind::Channel)
}

/// SPUBLISH shardchannel message: the number of shard subscribers.
fn spublish(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    publish_generic(ctx, argv, Kind::Shard)
}

/// The reply of PUBSUB CHANNELS and SHARDCHANNELS: names with subscribers,
/// matching the optional pattern.
fn channels_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], kind: Kind) -> Result<(), CmdError> {
    let pattern = match argv {
        [_, _] => None,
        [_, _, p] => Some(*p),
        _ => return Err(too_many(argv)),
    };
    let names = ctx.server.pubsub.channels(kind, pattern);
    ctx.reply.array(names.len());
    for n in names {
        ctx.reply.bulk(&n);
    }
    Ok(())
}

/// Redis's reply to more arguments than PUBSUB CHANNELS takes (the
/// table's arity is only a lower bound).
fn too_many(argv: &[&[u8]]) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
        String::from_utf8_lossy(argv[1])
    ))
}

/// PUBSUB CHANNELS [pattern]: active channels.
fn channels(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    channels_generic(ctx, argv, Kind::Channel)
}

/// PUBSUB SHARDCHANNELS [pattern]: active shard channels.
fn shardchannels(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    channels_generic(ctx, argv, Kind::Shard)
}

/// A flat array of name, subscriber count pairs for each named channel.
fn numsub_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], kind: Kind) -> Result<(), CmdError> {
    let names = &argv[2..];
    ctx.reply.array(names.len() * 2);
    for n in names {
        ctx.reply.bulk(n);
        ctx.reply.int(ctx.server.pubsub.numsub(kind, n) as i64);
    }
    Ok(())
}

/// PUBSUB NUMSUB [channel ...]: subscribers per channel (patterns not
/// counted).
fn numsub(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    numsub_generic(ctx, argv, Kind::Channel)
}

/// PUBSUB SHARDNUMSUB [shardchannel ...]: subscribers per shard channel.
fn shardnumsub(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    numsub_generic(ctx, argv, Kind::Shard)
}

/// PUBSUB NUMPAT: the number of distinct patterns subscribed to.
fn numpat(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.int(ctx.server.pubsub.len(Kind::Pattern) as i64);
    Ok(())
}

/// PUBSUB HELP.
fn help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    const LINES: &[&str] = &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    ctx.reply.array(LINES.len());
    for line in LINES {
        ctx.reply.simple(line);
    }
    Ok(())
}

/// PUBSUB without a subcommand: dispatch rejects it by arity already.
fn without_subcommand(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    Err(CmdError::WrongArity("pubsub".into()))
}
