//! Diagnostics: DEBUG (OBJECT, SLEEP, SET-ACTIVE-EXPIRE), SLOWLOG and
//! LATENCY, reading the slow log and latency monitor the dispatcher feeds.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::super::{args, flags, CmdError, Command, Ctx, Flow};
use super::{container, entry, subcommand_syntax};
use crate::store::set::Set;
use crate::store::{Object, ValueRef};

const ADMIN: u32 = flags::ADMIN | flags::NOSCRIPT | flags::LOADING | flags::STALE;
const HELP: u32 = flags::LOADING | flags::STALE;

pub const DEBUG: Command = entry(
    "debug",
    -2,
    ADMIN,
    0,
    debug,
    "server",
    "A container for debugging commands",
    "1.0.0",
);

/// DEBUG OBJECT key | SLEEP seconds | SET-ACTIVE-EXPIRE 0|1 | HELP. Redis
/// declares DEBUG as one command and parses the rest itself, so its
/// errors differ from a container's.
fn debug(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let sub = argv[1];
    match argv.len() {
        2 if args::is(sub, "help") => debug_help(ctx),
        3 if args::is(sub, "object") => debug_object(ctx, argv[2]),
        3 if args::is(sub, "sleep") => {
            // strtod of the leading number, as Redis: junk sleeps 0.
            let secs = leading_float(argv[2]);
            let d = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX);
            ctx.flow = Flow::Sleep(d);
            ctx.reply.ok();
            Ok(())
        }
        3 if args::is(sub, "set-active-expire") => {
            // atoi, as Redis: any non-zero leading integer turns it on.
            ctx.server
                .active_expire
                .store(leading_int(argv[2]) != 0, Relaxed);
            ctx.reply.ok();
            Ok(())
        }
        _ => Err(subcommand_syntax(argv)),
    }
}

/// The value of the longest prefix of `arg` that is a float, or 0.
fn leading_float(arg: &[u8]) -> f64 {
    (1..=arg.len().min(255))
        .rev()
        .find_map(|n| args::parse_f64(&arg[..n]))
        .unwrap_or(0.0)
}

/// C's atoi: an optional sign and the digits after it, 0 without any.
fn leading_int(arg: &[u8]) -> i64 {
    let (neg, rest) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    let n = rest
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add((d - b'0') as i64)
        });
    if neg {
        -n
    } else {
        n
    }
}

/// Length of Redis's RDB length prefix for `len`.
fn rdb_len_size(len: usize) -> usize {
    match len {
        0..=63 => 1,
        64..=16383 => 2,
        _ if len <= u32::MAX as usize => 5,
        _ => 9,
    }
}

/// Bytes a string takes in an RDB file: integers that fit 32 bits in their
/// int encodings, everything else as length + bytes. Redis compresses
/// strings over 20 bytes with LZF; ferrokv has no LZF yet, so those are
/// reported uncompressed.
fn rdb_string_size(bytes: &[u8]) -> usize {
    if bytes.len() <= 11 {
        if let Some(n) = args::parse_i64_exact(bytes) {
            if let Some(size) = rdb_int_size(n) {
                return size;
            }
        }
    }
    rdb_len_size(bytes.len()) + bytes.len()
}

/// Bytes an object takes in an RDB file (without LZF compression).
fn rdb_object_size(o: &Object) -> usize {
    match o {
        Object::Raw(b) => rdb_string_size(b),
        // An intset is saved as one string: its blob.
        Object::Set(Set::Ints(i)) => rdb_len_size(i.blob_len()) + i.blob_len(),
        Object::Set(s) => {
            rdb_len_size(s.len())
                + s.iter()
                    .map(|m| m.with_bytes(rdb_string_size))
                    .sum::<usize>()
        }
        // ferrokv's list nodes are not listpacks: their packed size stands
        // in for Redis's serialized quicklist length.
        Object::List(l) => l.packed_bytes(),
        // Sized once the RDB writer serializes these types.
        Object::ZSet(_) | Object::Hash(_) => 0,
    }
}

fn rdb_int_size(n: i64) -> Option<usize> {
    if i8::try_from(n).is_ok() {
        Some(2)
    } else if i16::try_from(n).is_ok() {
        Some(3)
    } else if i32::try_from(n).is_ok() {
        Some(5)
    } else {
        None
    }
}

/// DEBUG OBJECT key: Redis's one-line description of the value.
fn debug_object(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&[key]);
    let line = locked.peek(key).map(|e| {
        let (encoding, refcount, size) = match e.value() {
            // Redis shares the objects of 0..9999, hence their refcount.
            ValueRef::Int(n) => {
                let shared = (0..10_000).contains(&n);
                let size = rdb_int_size(n).unwrap_or_else(|| rdb_string_size(n.to_string().as_bytes()));
                ("int", if shared { i32::MAX as i64 } else { 1 }, size)
            }
            ValueRef::Emb(b) => ("embstr", 1, rdb_string_size(b)),
            ValueRef::Obj(o) => (o.encoding(), 1, rdb_object_size(o)),
        };
        let now_clock = crate::store::lru_clock(ctx.now_ms);
        let clock = e.clock();
        let idle = if now_clock >= clock {
            now_clock - clock
        } else {
            now_clock + (0xff_ffff - clock)
        };
        format!(
            "Value at:{:p} refcount:{refcount} encoding:{encoding} serializedlength:{size} lru:{clock} lru_seconds_idle:{idle}",
            e.key().as_ptr()
        )
    });
    ctx.finish(locked);
    match line {
        Some(l) => ctx.reply.simple(&l),
        None => return Err(CmdError::NoSuchKey),
    }
    Ok(())
}

fn debug_help(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    super::help(
        ctx,
        "DEBUG",
        &[
            "OBJECT <key>",
            "    Show low level info about `key` and associated value.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not",
            "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
            "    default.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    );
    Ok(())
}

pub const SLOWLOG: Command = container(
    "slowlog",
    &[
        entry(
            "get",
            -2,
            flags::ADMIN | HELP,
            0,
            slowlog_get,
            "server",
            "Get the slow log's entries",
            "2.2.12",
        ),
        entry(
            "len",
            2,
            flags::ADMIN | HELP,
            0,
            slowlog_len,
            "server",
            "Get the slow log's length",
            "2.2.12",
        ),
        entry(
            "reset",
            2,
            flags::ADMIN | HELP,
            0,
            slowlog_reset,
            "server",
            "Clear all entries from the slow log",
            "2.2.12",
        ),
        entry(
            "help",
            2,
            HELP,
            0,
            slowlog_help,
            "server",
            "Show helpful text about the different subcommands",
            "6.2.0",
        ),
    ],
    "server",
    "A container for slow log commands",
    "2.2.12",
);

/// SLOWLOG GET [count]: the newest `count` entries (10 by default, -1 for
/// all), each [id, unix time, microseconds, [args], client addr, name].
fn slowlog_get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let count = match argv {
        [_, _] => 10,
        [_, _, n] => {
            let n = args::parse_i64_exact(n)
                .filter(|n| *n >= -1)
                .ok_or(CmdError::Static(
                    "ERR count should be greater than or equal to -1",
                ))?;
            if n == -1 {
                usize::MAX
            } else {
                usize::try_from(n).unwrap_or(usize::MAX)
            }
        }
        _ => return Err(subcommand_syntax(argv)),
    };
    let d = ctx.reply.deferred(ferrokv_resp::DeferredKind::Array);
    let reply = &mut *ctx.reply;
    let n = ctx.server.slowlog.newest(count, |e| {
        reply.array(6);
        reply.int(e.id as i64);
        reply.int(e.time);
        reply.int(e.usec as i64);
        reply.array(e.args.len());
        for a in &e.args {
            reply.bulk(a);
        }
        reply.bulk(e.peer.as_bytes());
        reply.bulk(&e.name);
    });
    ctx.reply.set_deferred(d, n);
    Ok(())
}

/// SLOWLOG LEN: the number of entries.
fn slowlog_len(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.int(ctx.server.slowlog.len() as i64);
    Ok(())
}

/// SLOWLOG RESET: +OK, the log emptied.
fn slowlog_reset(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.server.slowlog.reset();
    ctx.reply.ok();
    Ok(())
}

fn slowlog_help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    super::help(
        ctx,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}

pub const LATENCY: Command = container(
    "latency",
    &[
        entry(
            "doctor",
            2,
            ADMIN,
            0,
            latency_doctor,
            "server",
            "Return a human readable latency analysis report.",
            "2.8.13",
        ),
        entry(
            "history",
            3,
            ADMIN,
            0,
            latency_history,
            "server",
            "Return timestamp-latency samples for the event.",
            "2.8.13",
        ),
        entry(
            "latest",
            2,
            ADMIN,
            0,
            latency_latest,
            "server",
            "Return the latest latency samples for all events.",
            "2.8.13",
        ),
        entry(
            "reset",
            -2,
            ADMIN,
            0,
            latency_reset,
            "server",
            "Reset latency data for one or more events.",
            "2.8.13",
        ),
        entry(
            "histogram",
            -2,
            ADMIN,
            0,
            latency_histogram,
            "server",
            "Return the cumulative distribution of latencies of a subset of commands or all.",
            "7.0.0",
        ),
        entry(
            "help",
            2,
            HELP,
            0,
            latency_help,
            "server",
            "Show helpful text about the different subcommands.",
            "2.8.13",
        ),
    ],
    "server",
    "A container for latency diagnostics commands",
    "2.8.13",
);

/// LATENCY LATEST: [event, time of latest sample, latest ms, all-time max
/// ms] per event.
fn latency_latest(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let reply = &mut *ctx.reply;
    ctx.server.latency.with_events(|events| {
        let events: Vec<_> = events
            .iter()
            .filter(|(_, s)| !s.samples.is_empty())
            .collect();
        reply.array(events.len());
        for (name, series) in events {
            let last = series
                .samples
                .back()
                .copied()
                .unwrap_or(crate::latency::Sample { time: 0, ms: 0 });
            reply.array(4);
            reply.bulk(name.as_bytes());
            reply.int(last.time);
            reply.int(last.ms as i64);
            reply.int(series.max as i64);
        }
    });
    Ok(())
}

/// LATENCY HISTOGRAM [command ...]: per command with calls (all of them,
/// or those named, a container's subcommands included; unknown names are
/// skipped, repeated ones repeated, as in Redis), a map of its calls and
/// its cumulative latency buckets in microseconds.
fn latency_histogram(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let table = &ctx.server.commands;
    let ids: Vec<usize> = match argv {
        [_, _, names @ ..] if !names.is_empty() => {
            names.iter().flat_map(|n| table.entries_named(n)).collect()
        }
        _ => (0..table.entry_count()).collect(),
    };
    let found: Vec<_> = ids
        .into_iter()
        .filter_map(|id| {
            let h = table.latency(id);
            (h.total() > 0).then(|| (table.full_name(id), h))
        })
        .collect();
    let reply = &mut *ctx.reply;
    reply.map(found.len());
    for (name, h) in found {
        reply.bulk(name.unwrap_or_default().as_bytes());
        reply.map(2);
        reply.bulk(b"calls");
        reply.int(h.total() as i64);
        reply.bulk(b"histogram_usec");
        let cdf = h.cdf();
        reply.map(cdf.len());
        for (usec, calls) in cdf {
            reply.int(usec as i64);
            reply.int(calls as i64);
        }
    }
    Ok(())
}

/// LATENCY HISTORY event: [time, ms] per sample, oldest first.
fn latency_history(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let reply = &mut *ctx.reply;
    ctx.server.latency.with_events(|events| {
        let series = events
            .iter()
            .find(|(name, _)| name.as_bytes() == argv[2])
            .map(|(_, s)| s);
        let samples: Vec<_> = series
            .map(|s| s.samples.iter().copied().collect())
            .unwrap_or_default();
        reply.array(samples.len());
        for s in samples {
            reply.array(2);
            reply.int(s.time);
            reply.int(s.ms as i64);
        }
    });
    Ok(())
}

/// LATENCY RESET [event ...]: how many events were forgotten.
fn latency_reset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.reply.int(ctx.server.latency.reset(&argv[2..]) as i64);
    Ok(())
}

/// LATENCY DOCTOR: Redis's report, with the per-event statistics (the
/// tuning advice Redis adds after them is not given).
fn latency_doctor(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut out = String::new();
    let enabled = ctx.server.config.latency_threshold_ms.load(Relaxed) > 0;
    let now = ctx.now_ms / 1000;
    ctx.server.latency.with_events(|events| {
        let events: Vec<_> = events.iter().filter(|(_, s)| !s.samples.is_empty()).collect();
        if events.is_empty() && !enabled {
            out.push_str(
                "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. \
                 You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. \
                 If we weren't in a deep space mission I'd suggest to take a look at \
                 https://redis.io/topics/latency-monitor.\n",
            );
            return;
        }
        if events.is_empty() {
            out.push_str(
                "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the \
                 slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think \
                 things over.\n",
            );
            return;
        }
        out.push_str(
            "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, \
             do you Dave?\n\n",
        );
        for (i, (name, series)) in events.iter().enumerate() {
            let n = series.samples.len() as u64;
            let avg = series.samples.iter().map(|s| s.ms).sum::<u64>() / n;
            let dev = series.samples.iter().map(|s| s.ms.abs_diff(avg)).sum::<u64>() / n;
            let first = series.samples.front().map(|s| s.time).unwrap_or(now);
            let period = (now - first).max(0) as f64 / n as f64;
            let _ = writeln!(
                out,
                "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {dev}ms, period {period:.2} sec). \
                 Worst all time event {}ms.",
                i + 1,
                series.max
            );
        }
        out.push_str(
            "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the \
             Redis community to get some help, providing this report in your help request.\n",
        );
    });
    ctx.reply.verbatim(out.as_bytes());
    Ok(())
}

fn latency_help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    super::help(
        ctx,
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}
