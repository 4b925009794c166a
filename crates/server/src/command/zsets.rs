//! Sorted-set commands: Redis 7.0's sorted_set family, blocking pops
//! included.
//!
//! The values live in store::zset (encodings, ranks); this module parses
//! arguments with Redis's exact errors and order of checks, and lays out
//! replies the way Redis does for each protocol: scores go through
//! `Reply::double` (%.17g in RESP2, RESP3 doubles), WITHSCORES results are
//! flat in RESP2 and nested `[member, score]` pairs in RESP3.
//!
//! Ranges of every kind (rank, score, lex, with REV and LIMIT) are turned
//! into one ascending rank interval, so each family of commands has one
//! body: ZRANGE and its older spellings, the ZREMRANGEBY* trio, the pops,
//! and the union/intersection/difference commands.
//!
//! Commands whose keys follow a `numkeys` argument (ZUNION, ZMPOP, ...)
//! carry `flags::MOVABLE_KEYS` and lock the keys they parse.

use crate::store::ValueRef;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use rand::Rng;

use super::args::{float, int, is, parse_i64_exact, timeout};
use super::{acl, flags, CmdError, Command, Ctx, Family, Keys, NO_KEYS};
use crate::blocking::TimeoutReply;
use crate::pubsub::events;
use crate::store::zset::{Limits, ZSet};
use crate::store::{Locked, Object, Value};
use ferrokv_resp::Reply;

const FAMILY: Family = Family {
    acl: acl::SORTEDSET,
    group: "sorted_set",
};

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};
/// BZPOPMIN key [key ...] timeout.
const KEYS_THEN_TIMEOUT: Keys = Keys {
    first: 1,
    last: -2,
    step: 1,
};

const W: u32 = flags::WRITE;
const R: u32 = flags::READONLY;
const DENYOOM: u32 = flags::DENYOOM;
const FAST: u32 = flags::FAST;
const MOVABLE: u32 = flags::MOVABLE_KEYS;
const BLOCKING: u32 = flags::BLOCKING;

pub const COMMANDS: &[Command] = &[
    FAMILY.cmd("zadd", -4, W | DENYOOM | FAST, ONE_KEY, zadd,
        "Add one or more members to a sorted set, or update its score if it already exists", "1.2.0"),
    FAMILY.cmd("zincrby", 4, W | DENYOOM | FAST, ONE_KEY, zincrby,
        "Increment the score of a member in a sorted set", "1.2.0"),
    FAMILY.cmd("zrem", -3, W | FAST, ONE_KEY, zrem,
        "Remove one or more members from a sorted set", "1.2.0"),
    FAMILY.cmd("zcard", 2, R | FAST, ONE_KEY, zcard,
        "Get the number of members in a sorted set", "1.2.0"),
    FAMILY.cmd("zscore", 3, R | FAST, ONE_KEY, zscore,
        "Get the score associated with the given member in a sorted set", "1.2.0"),
    FAMILY.cmd("zmscore", -3, R | FAST, ONE_KEY, zmscore,
        "Get the score associated with the given members in a sorted set", "6.2.0"),
    FAMILY.cmd("zrank", 3, R | FAST, ONE_KEY, zrank,
        "Determine the index of a member in a sorted set", "2.0.0"),
    FAMILY.cmd("zrevrank", 3, R | FAST, ONE_KEY, zrevrank,
        "Determine the index of a member in a sorted set, with scores ordered from high to low", "2.0.0"),
    FAMILY.cmd("zcount", 4, R | FAST, ONE_KEY, zcount,
        "Count the members in a sorted set with scores within the given values", "2.0.0"),
    FAMILY.cmd("zlexcount", 4, R | FAST, ONE_KEY, zlexcount,
        "Count the number of members in a sorted set between a given lexicographical range", "2.8.9"),
    FAMILY.cmd("zrange", -4, R, ONE_KEY, zrange,
        "Return a range of members in a sorted set", "1.2.0"),
    FAMILY.cmd("zrangestore", -5, W | DENYOOM, Keys { first: 1, last: 2, step: 1 }, zrangestore,
        "Store a range of members from sorted set into another key", "6.2.0"),
    FAMILY.cmd("zrevrange", -4, R, ONE_KEY, zrevrange,
        "Return a range of members in a sorted set, by index, with scores ordered from high to low", "1.2.0"),
    FAMILY.cmd("zrangebyscore", -4, R, ONE_KEY, zrangebyscore,
        "Return a range of members in a sorted set, by score", "1.0.5"),
    FAMILY.cmd("zrevrangebyscore", -4, R, ONE_KEY, zrevrangebyscore,
        "Return a range of members in a sorted set, by score, with scores ordered from high to low", "2.2.0"),
    FAMILY.cmd("zrangebylex", -4, R, ONE_KEY, zrangebylex,
        "Return a range of members in a sorted set, by lexicographical range", "2.8.9"),
    FAMILY.cmd("zrevrangebylex", -4, R, ONE_KEY, zrevrangebylex,
        "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.", "2.8.9"),
    FAMILY.cmd("zremrangebyrank", 4, W, ONE_KEY, zremrangebyrank,
        "Remove all members in a sorted set within the given indexes", "2.0.0"),
    FAMILY.cmd("zremrangebyscore", 4, W, ONE_KEY, zremrangebyscore,
        "Remove all members in a sorted set within the given scores", "1.2.0"),
    FAMILY.cmd("zremrangebylex", 4, W, ONE_KEY, zremrangebylex,
        "Remove all members in a sorted set between the given lexicographical range", "2.8.9"),
    FAMILY.cmd("zpopmin", -2, W | FAST, ONE_KEY, zpopmin,
        "Remove and return members with the lowest scores in a sorted set", "5.0.0"),
    FAMILY.cmd("zpopmax", -2, W | FAST, ONE_KEY, zpopmax,
        "Remove and return members with the highest scores in a sorted set", "5.0.0"),
    FAMILY.cmd("bzpopmin", -3, W | flags::NOSCRIPT | BLOCKING | FAST, KEYS_THEN_TIMEOUT, bzpopmin,
        "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available", "5.0.0"),
    FAMILY.cmd("bzpopmax", -3, W | flags::NOSCRIPT | BLOCKING | FAST, KEYS_THEN_TIMEOUT, bzpopmax,
        "Remove and return the member with the highest score from one or more sorted sets, or block until one is available", "5.0.0"),
    FAMILY.cmd("zmpop", -4, W | MOVABLE, NO_KEYS, zmpop,
        "Remove and return members with scores in a sorted set", "7.0.0"),
    FAMILY.cmd("bzmpop", -5, W | BLOCKING | MOVABLE, NO_KEYS, bzmpop,
        "Remove and return members with scores in a sorted set or block until one is available", "7.0.0"),
    FAMILY.cmd("zrandmember", -2, R, ONE_KEY, zrandmember,
        "Get one or multiple random elements from a sorted set", "6.2.0"),
    FAMILY.cmd("zunion", -3, R | MOVABLE, NO_KEYS, zunion,
        "Add multiple sorted sets", "6.2.0"),
    FAMILY.cmd("zinter", -3, R | MOVABLE, NO_KEYS, zinter,
        "Intersect multiple sorted sets", "6.2.0"),
    FAMILY.cmd("zdiff", -3, R | MOVABLE, NO_KEYS, zdiff,
        "Subtract multiple sorted sets", "6.2.0"),
    FAMILY.cmd("zunionstore", -4, W | DENYOOM | MOVABLE, ONE_KEY, zunionstore,
        "Add multiple sorted sets and store the resulting sorted set in a new key", "2.0.0"),
    FAMILY.cmd("zinterstore", -4, W | DENYOOM | MOVABLE, ONE_KEY, zinterstore,
        "Intersect multiple sorted sets and store the resulting sorted set in a new key", "2.0.0"),
    FAMILY.cmd("zdiffstore", -4, W | DENYOOM | MOVABLE, ONE_KEY, zdiffstore,
        "Subtract multiple sorted sets and store the resulting sorted set in a new key", "6.2.0"),
    FAMILY.cmd("zintercard", -3, R | MOVABLE, NO_KEYS, zintercard,
        "Intersect multiple sorted sets and return the cardinality of the result", "7.0.0"),
    FAMILY.cmd("zscan", -3, R, ONE_KEY, zscan,
        "Incrementally iterate sorted sets elements and associated scores", "2.8.0"),
];

// ---------------------------------------------------------------------------
// shared helpers

fn limits(ctx: &Ctx<'_>) -> Limits {
    let c = &ctx.server.config;
    Limits {
        max_entries: c.zset_max_listpack_entries.load(Relaxed) as usize,
        max_value: c.zset_max_listpack_value.load(Relaxed) as usize,
    }
}

/// The sorted set at `key`: `None` when there is no key, WRONGTYPE when the
/// key holds another type.
fn zset_mut<'l>(locked: &'l mut Locked<'_>, key: &[u8]) -> Result<Option<&'l mut ZSet>, CmdError> {
    match locked.get(key) {
        None => Ok(None),
        Some(e) => match e.into_object_mut() {
            Some(Object::ZSet(z)) => Ok(Some(z)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Like [`zset_mut`] for a read, counted in keyspace hits/misses (with
/// the `keymiss` notification) as Redis's lookupKeyRead counts it.
fn zset_read<'l>(
    ctx: &mut Ctx<'_>,
    locked: &'l mut Locked<'_>,
    key: &[u8],
) -> Result<Option<&'l mut ZSet>, CmdError> {
    // Its own lookup: the miss needs `locked` (Ctx::read_lookup), which
    // the returned sorted set borrows.
    let found = locked.get(key).is_some();
    ctx.read_lookup(locked, key, found);
    zset_mut(locked, key)
}

/// Members with their scores, copied out of an input key.
type Members = Vec<(Vec<u8>, f64)>;

/// The members and scores of an input of ZUNION/ZINTER/ZDIFF and their
/// STORE forms: a sorted set, or a set whose members all score 1, as
/// Redis accepts; None for a missing key, WRONGTYPE for other types.
fn source_items(locked: &mut Locked<'_>, key: &[u8]) -> Result<Option<Members>, CmdError> {
    let Some(e) = locked.get(key) else {
        return Ok(None);
    };
    let mut items = Vec::new();
    match e.value() {
        ValueRef::Obj(Object::ZSet(z)) => {
            items.reserve(z.len());
            z.for_range(0, z.len(), false, |m, s| items.push((m.to_vec(), s)));
        }
        ValueRef::Obj(Object::Set(s)) => {
            items.reserve(s.len());
            items.extend(s.iter().map(|m| (m.with_bytes(|b| b.to_vec()), 1.0)));
        }
        _ => return Err(CmdError::WrongType),
    }
    Ok(Some(items))
}

/// Stores a new sorted set under `key`.
fn store(locked: &mut Locked<'_>, key: &[u8], z: ZSet) {
    locked.set(key, Value::Obj(Box::new(Object::ZSet(z))), None);
}

/// Deletes `key` when its sorted set has been emptied (Redis never keeps
/// an empty collection); whether it did.
fn drop_if_empty(locked: &mut Locked<'_>, key: &[u8]) -> bool {
    if matches!(zset_mut(locked, key), Ok(Some(z)) if z.is_empty()) {
        locked.remove(key);
        return true;
    }
    false
}

/// The notifications of a command that removed members: its own event,
/// then `del` when the key went with them.
fn notify_removal(ctx: &mut Ctx<'_>, event: &str, key: &[u8], deleted: bool) {
    ctx.notify(events::ZSET, event, key);
    if deleted {
        ctx.notify(events::GENERIC, "del", key);
    }
}

/// The array header for `n` elements, WITHSCORES doubling it in RESP2.
fn elements_header(reply: &mut Reply, n: usize, withscores: bool) {
    if withscores && !reply.is_resp3() {
        reply.array(n * 2);
    } else {
        reply.array(n);
    }
}

/// One element of a WITHSCORES-capable reply: a `[member, score]` pair in
/// RESP3, flat in RESP2.
fn element(reply: &mut Reply, member: &[u8], score: f64, withscores: bool) {
    if withscores && reply.is_resp3() {
        reply.array(2);
    }
    reply.bulk(member);
    if withscores {
        reply.double(score);
    }
}

/// Writes the elements of ascending ranks `start..end` (from the top when
/// `rev`).
fn reply_range(reply: &mut Reply, z: &ZSet, start: usize, end: usize, rev: bool, withscores: bool) {
    elements_header(reply, end.saturating_sub(start), withscores);
    z.for_range(start, end, rev, |m, s| element(reply, m, s, withscores));
}

/// Parses a double as Redis's range parsers do with a bare `strtod`: the
/// whole argument (up to an embedded NUL, where C stops) must be read,
/// leading spaces and the empty string (0) are accepted, NaN is not.
fn strtod_all(arg: &[u8]) -> Option<f64> {
    let text = arg.split(|&b| b == 0).next().unwrap_or(&[]);
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text);
    buf.push(0);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // Safety: buf is NUL-terminated and outlives the call; strtod stores a
    // pointer into buf in `end`.
    let (v, consumed) = unsafe {
        let v = libc::strtod(buf.as_ptr() as *const libc::c_char, &mut end);
        (v, end as usize - buf.as_ptr() as usize)
    };
    (consumed == text.len() && !v.is_nan()).then_some(v)
}

/// A score interval (Redis's zrangespec).
#[derive(Clone, Copy)]
struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

impl ScoreRange {
    /// `[(]min [(]max`; "ERR min or max is not a float".
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
        let one = |a: &[u8]| -> Option<(f64, bool)> {
            match a.first() {
                Some(b'(') => strtod_all(&a[1..]).map(|v| (v, true)),
                _ => strtod_all(a).map(|v| (v, false)),
            }
        };
        match (one(min), one(max)) {
            (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
                min,
                minex,
                max,
                maxex,
            }),
            _ => Err(CmdError::Static("ERR min or max is not a float")),
        }
    }

    fn above_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    /// The ascending rank interval of the elements inside.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let lo = z.count_before(|s, _| !self.above_min(s));
        let hi = z.count_before(|s, _| self.below_max(s));
        (lo, hi.max(lo))
    }
}

/// One end of a lex range: `-`, `+`, `[inclusive` or `(exclusive`.
#[derive(Clone, Copy)]
enum Lex<'a> {
    Min,
    Max,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

/// A lex interval (Redis's zlexrangespec).
#[derive(Clone, Copy)]
struct LexRange<'a> {
    min: Lex<'a>,
    max: Lex<'a>,
}

impl<'a> LexRange<'a> {
    /// "ERR min or max not valid string range item".
    fn parse(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, CmdError> {
        // C compares "+" and "-" up to the first NUL.
        let alone = |a: &[u8]| a.len() == 1 || a[1] == 0;
        let one = |a: &'a [u8]| -> Option<Lex<'a>> {
            match a.first()? {
                b'+' if alone(a) => Some(Lex::Max),
                b'-' if alone(a) => Some(Lex::Min),
                b'(' => Some(Lex::Excl(&a[1..])),
                b'[' => Some(Lex::Incl(&a[1..])),
                _ => None,
            }
        };
        match (one(min), one(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(CmdError::Static(
                "ERR min or max not valid string range item",
            )),
        }
    }

    fn above_min(&self, m: &[u8]) -> bool {
        match self.min {
            Lex::Min => true,
            Lex::Max => false,
            Lex::Incl(b) => m >= b,
            Lex::Excl(b) => m > b,
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match self.max {
            Lex::Min => false,
            Lex::Max => true,
            Lex::Incl(b) => m <= b,
            Lex::Excl(b) => m < b,
        }
    }

    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let lo = z.count_before(|_, m| !self.above_min(m));
        let hi = z.count_before(|_, m| self.below_max(m));
        (lo, hi.max(lo))
    }
}

/// A parsed range of any kind.
enum Range<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

/// Redis's rank sanitising for ZRANGE and ZREMRANGEBYRANK: negative
/// indexes count from the end; the result is an ascending interval.
fn rank_interval(start: i64, end: i64, len: usize) -> (usize, usize) {
    let llen = len as i64;
    let mut start = if start < 0 {
        start.saturating_add(llen)
    } else {
        start
    };
    let end = if end < 0 {
        end.saturating_add(llen)
    } else {
        end
    };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return (0, 0);
    }
    let end = end.min(llen - 1);
    (start as usize, end as usize + 1)
}

impl Range<'_> {
    /// The ascending ranks to visit: for REV the range is counted from the
    /// top (rank) and LIMIT's offset skips from the top (score, lex).
    fn resolve(&self, z: &ZSet, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
        let len = z.len();
        let (lo, hi) = match self {
            Range::Rank(start, end) => {
                let (s, e) = rank_interval(*start, *end, len);
                if s >= e {
                    return (0, 0);
                }
                return if rev { (len - e, len - s) } else { (s, e) };
            }
            Range::Score(r) => r.ranks(z),
            Range::Lex(r) => r.ranks(z),
        };
        // A negative offset skips everything; a negative limit is no limit.
        if offset < 0 {
            return (0, 0);
        }
        let offset = offset as usize;
        let avail = (hi - lo).saturating_sub(offset);
        let take = if limit < 0 {
            avail
        } else {
            avail.min(limit as usize)
        };
        if rev {
            (hi - offset.min(hi - lo) - take, hi - offset.min(hi - lo))
        } else {
            (lo + offset.min(hi - lo), lo + offset.min(hi - lo) + take)
        }
    }
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]:
/// the number of members added (or changed with CH); with INCR the new
/// score, or null when the update was not done.
fn zadd(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zadd_generic(ctx, argv, false)
}

/// ZINCRBY key increment member: the member's new score.
fn zincrby(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zadd_generic(ctx, argv, true)
}

/// Redis's zaddGenericCommand: ZINCRBY is ZADD with INCR preset, options
/// parsing included (so `ZINCRBY key nx m` is a syntax error, as there).
fn zadd_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], mut incr: bool) -> Result<(), CmdError> {
    let key = argv[1];
    let (mut nx, mut xx, mut ch, mut gt, mut lt) = (false, false, false, false, false);
    let mut idx = 2;
    while idx < argv.len() {
        let a = argv[idx];
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "ch") {
            ch = true;
        } else if is(a, "incr") {
            incr = true;
        } else if is(a, "gt") {
            gt = true;
        } else if is(a, "lt") {
            lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let rest = &argv[idx..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::Static(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::Static(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::Static(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs = rest
        .chunks(2)
        .map(|p| Ok((float(p[0])?, p[1])))
        .collect::<Result<Vec<(f64, &[u8])>, CmdError>>()?;
    let limits = limits(ctx);
    let mut locked = ctx.lock(&[key]);
    let mut created = None;
    let z = match zset_mut(&mut locked, key) {
        Err(e) => {
            ctx.finish(locked);
            return Err(e);
        }
        Ok(Some(z)) => z,
        Ok(None) if xx => {
            ctx.finish(locked);
            if incr {
                ctx.reply.null();
            } else {
                ctx.reply.int(0);
            }
            return Ok(());
        }
        Ok(None) => created.insert(ZSet::with_hint(1, pairs[0].1.len(), limits)),
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0);
    let mut new_score = 0.0;
    let mut nan = false;
    for &(score, member) in &pairs {
        match z.score(member) {
            Some(cur) => {
                if nx {
                    continue;
                }
                let score = if incr { cur + score } else { score };
                if score.is_nan() {
                    nan = true;
                    break;
                }
                if (lt && score >= cur) || (gt && score <= cur) {
                    continue;
                }
                processed += 1;
                new_score = score;
                if score != cur {
                    z.insert(member, score, limits);
                    updated += 1;
                }
            }
            None if !xx => {
                z.insert(member, score, limits);
                added += 1;
                processed += 1;
                new_score = score;
            }
            None => {}
        }
    }
    if let Some(z) = created.filter(|z| !z.is_empty()) {
        store(&mut locked, key, z);
        ctx.notify(events::NEW, "new", key);
    }
    if added + updated > 0 {
        ctx.modified(key);
        ctx.notify(events::ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    ctx.finish(locked);
    if nan {
        return Err(CmdError::Static(
            "ERR resulting score is not a number (NaN)",
        ));
    }
    if incr {
        if processed > 0 {
            ctx.reply.double(new_score);
        } else {
            ctx.reply.null();
        }
    } else {
        ctx.reply.int(if ch { added + updated } else { added });
    }
    Ok(())
}

/// ZREM key member [member ...]: the number of members removed.
fn zrem(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let mut locked = ctx.lock(&[key]);
    let removed = match zset_mut(&mut locked, key) {
        Ok(Some(z)) => Ok(argv[2..].iter().filter(|m| z.remove(m).is_some()).count()),
        Ok(None) => Ok(0),
        Err(e) => Err(e),
    };
    if let Ok(n) = removed {
        if n > 0 {
            let deleted = drop_if_empty(&mut locked, key);
            ctx.modified(key);
            notify_removal(ctx, "zrem", key, deleted);
        }
    }
    ctx.finish(locked);
    ctx.reply.int(removed? as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// reads of one key

/// Runs `f` on the sorted set at `key` for a read (None when missing) and
/// releases the lock.
fn with_read<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut Reply, Option<&mut ZSet>) -> T,
) -> Result<T, CmdError> {
    let mut locked = ctx.lock(&[key]);
    let out = match zset_read(ctx, &mut locked, key) {
        Ok(z) => Ok(f(ctx.reply, z)),
        Err(e) => Err(e),
    };
    ctx.finish(locked);
    out
}

/// ZCARD key: the number of members, 0 for no key.
fn zcard(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    with_read(ctx, argv[1], |r, z| r.int(z.map_or(0, |z| z.len()) as i64))
}

/// ZSCORE key member: the score (a double), or null.
fn zscore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    with_read(ctx, argv[1], |r, z| {
        match z.and_then(|z| z.score(argv[2])) {
            Some(s) => r.double(s),
            None => r.null(),
        }
    })
}

/// ZMSCORE key member [member ...]: a score or null per member.
fn zmscore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    with_read(ctx, argv[1], |r, z| {
        r.array(argv.len() - 2);
        for m in &argv[2..] {
            match z.as_ref().and_then(|z| z.score(m)) {
                Some(s) => r.double(s),
                None => r.null(),
            }
        }
    })
}

/// ZRANK key member: the 0-based rank by ascending score, or null.
fn zrank(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    rank_generic(ctx, argv, false)
}

/// ZREVRANK key member: the 0-based rank by descending score, or null.
fn zrevrank(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    rank_generic(ctx, argv, true)
}

fn rank_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], rev: bool) -> Result<(), CmdError> {
    with_read(ctx, argv[1], |r, z| {
        let Some(z) = z else {
            return r.null();
        };
        match z.rank(argv[2]) {
            Some((rank, _)) if rev => r.int((z.len() - 1 - rank) as i64),
            Some((rank, _)) => r.int(rank as i64),
            None => r.null(),
        }
    })
}

/// ZCOUNT key min max: the number of members with a score in the range.
fn zcount(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let range = ScoreRange::parse(argv[2], argv[3])?;
    with_read(ctx, argv[1], |r, z| {
        let (lo, hi) = z.map_or((0, 0), |z| range.ranks(z));
        r.int((hi - lo) as i64)
    })
}

/// ZLEXCOUNT key min max: the number of members in the lex range.
fn zlexcount(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let range = LexRange::parse(argv[2], argv[3])?;
    with_read(ctx, argv[1], |r, z| {
        let (lo, hi) = z.map_or((0, 0), |z| range.ranks(z));
        r.int((hi - lo) as i64)
    })
}

// ---------------------------------------------------------------------------
// ZRANGE and its older spellings

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count]
/// [WITHSCORES]: the members in the range (with scores).
fn zrange(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Auto, None)
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]:
/// the number of members stored in dst.
fn zrangestore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 2, Some(argv[1]), Kind::Auto, None)
}

/// ZREVRANGE key start stop [WITHSCORES].
fn zrevrange(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Rank, Some(true))
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count].
fn zrangebyscore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Score, Some(false))
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count].
fn zrevrangebyscore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Score, Some(true))
}

/// ZRANGEBYLEX key min max [LIMIT offset count].
fn zrangebylex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Lex, Some(false))
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count].
fn zrevrangebylex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zrange_generic(ctx, argv, 1, None, Kind::Lex, Some(true))
}

/// Redis's zrangeGenericCommand. `src` is the index of the source key;
/// `kind`/`rev` are fixed by the older commands and chosen by options in
/// ZRANGE and ZRANGESTORE; `dst` makes it store instead of reply.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    src: usize,
    dst: Option<&[u8]>,
    mut kind: Kind,
    rev: Option<bool>,
) -> Result<(), CmdError> {
    let key = argv[src];
    let (mut withscores, mut reverse) = (false, rev.unwrap_or(false));
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = src + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if dst.is_none() && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = int(argv[j + 1])?;
            limit = int(argv[j + 2])?;
            j += 2;
        } else if rev.is_none() && !reverse && is(a, "rev") {
            reverse = true;
        } else if kind == Kind::Auto && is(a, "bylex") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && is(a, "byscore") {
            kind = Kind::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    if limit != -1 && kind == Kind::Rank {
        return Err(CmdError::Static(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == Kind::Lex {
        return Err(CmdError::Static(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // REV score and lex ranges are written max first.
    let (min, max) = if reverse && kind != Kind::Rank {
        (argv[src + 2], argv[src + 1])
    } else {
        (argv[src + 1], argv[src + 2])
    };
    let range = match kind {
        Kind::Score => Range::Score(ScoreRange::parse(min, max)?),
        Kind::Lex => Range::Lex(LexRange::parse(min, max)?),
        _ => Range::Rank(int(min)?, int(max)?),
    };
    let Some(dst) = dst else {
        return with_read(ctx, key, |r, z| match z {
            None => r.array(0),
            Some(z) => {
                let (s, e) = range.resolve(z, reverse, offset, limit);
                reply_range(r, z, s, e, reverse, withscores);
            }
        });
    };
    let limits = limits(ctx);
    let mut locked = ctx.lock(&[dst, key]);
    let result = zset_read(ctx, &mut locked, key).map(|z| {
        let z = z?;
        let (s, e) = range.resolve(z, reverse, offset, limit);
        let hint = if kind == Kind::Rank { e - s } else { 0 };
        let mut out = ZSet::with_hint(hint, 0, limits);
        let mut items = Vec::with_capacity(e - s);
        z.for_range(s, e, reverse, |m, sc| items.push((m.to_vec(), sc)));
        for (m, sc) in items {
            out.insert(&m, sc, limits);
        }
        Some(out)
    });
    let n = match result {
        Err(e) => {
            ctx.finish(locked);
            return Err(e);
        }
        Ok(z) => store_result(
            ctx,
            &mut locked,
            dst,
            z.filter(|z| !z.is_empty()),
            "zrangestore",
        ),
    };
    ctx.finish(locked);
    ctx.reply.int(n as i64);
    Ok(())
}

/// Stores a computed result at `dst` (deleting dst when it is empty, as
/// Redis does) and returns its size. `event` is the command's
/// notification.
fn store_result(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    dst: &[u8],
    z: Option<ZSet>,
    event: &str,
) -> usize {
    match z {
        Some(z) => {
            let n = z.len();
            let old = locked.set(dst, Value::Obj(Box::new(Object::ZSet(z))), None);
            ctx.modified(dst);
            ctx.notify_new(&old, dst);
            ctx.notify(events::ZSET, event, dst);
            n
        }
        None => {
            if locked.remove(dst).is_some() {
                ctx.modified(dst);
                ctx.notify(events::GENERIC, "del", dst);
            }
            0
        }
    }
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*

/// ZREMRANGEBYRANK key start stop: the number of members removed.
fn zremrangebyrank(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let range = Range::Rank(int(argv[2])?, int(argv[3])?);
    zremrange_generic(ctx, argv[1], range)
}

/// ZREMRANGEBYSCORE key min max: the number of members removed.
fn zremrangebyscore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let range = Range::Score(ScoreRange::parse(argv[2], argv[3])?);
    zremrange_generic(ctx, argv[1], range)
}

/// ZREMRANGEBYLEX key min max: the number of members removed.
fn zremrangebylex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let range = Range::Lex(LexRange::parse(argv[2], argv[3])?);
    zremrange_generic(ctx, argv[1], range)
}

fn zremrange_generic(ctx: &mut Ctx<'_>, key: &[u8], range: Range<'_>) -> Result<(), CmdError> {
    let event = match range {
        Range::Rank(..) => "zremrangebyrank",
        Range::Score(_) => "zremrangebyscore",
        Range::Lex(_) => "zremrangebylex",
    };
    let mut locked = ctx.lock(&[key]);
    let removed = zset_mut(&mut locked, key).map(|z| {
        z.map_or(0, |z| {
            let (s, e) = range.resolve(z, false, 0, -1);
            z.remove_range(s, e)
        })
    });
    if let Ok(n) = removed {
        if n > 0 {
            let deleted = drop_if_empty(&mut locked, key);
            ctx.modified(key);
            notify_removal(ctx, event, key, deleted);
        }
    }
    ctx.finish(locked);
    ctx.reply.int(removed? as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// pops

/// How a pop lays out its reply (Redis's emitkey / use_nested_array).
#[derive(Clone, Copy, PartialEq)]
enum PopReply {
    /// ZPOPMIN/ZPOPMAX: member, score, ... flat.
    Flat,
    /// ZPOPMIN/ZPOPMAX with a count in RESP3: [member, score] pairs.
    Pairs,
    /// BZPOPMIN/BZPOPMAX: key, member, score.
    KeyFlat,
    /// ZMPOP/BZMPOP: key, [[member, score], ...].
    KeyPairs,
}

/// Pops up to `count` elements from the first existing key (WRONGTYPE if
/// that key is not a sorted set) and writes the reply. False when no key
/// exists (nothing is written).
fn pop_first(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    keys: &[&[u8]],
    max: bool,
    count: usize,
    style: PopReply,
) -> Result<bool, CmdError> {
    // Redis 7.0 serves a blocked client only from a key that holds a
    // sorted set; one that was given another type leaves it waiting.
    let serving = ctx.serving;
    for &key in keys {
        let z = match zset_mut(locked, key) {
            Err(_) if serving => continue,
            z => z?,
        };
        let Some(z) = z else {
            continue;
        };
        let n = count.min(z.len());
        let reply = &mut *ctx.reply;
        match style {
            PopReply::Flat => reply.array(n * 2),
            PopReply::Pairs => reply.array(n),
            PopReply::KeyFlat => {
                reply.array(n * 2 + 1);
                reply.bulk(key);
            }
            PopReply::KeyPairs => {
                reply.array(2);
                reply.bulk(key);
                reply.array(n);
            }
        }
        let (s, e) = if max { (z.len() - n, z.len()) } else { (0, n) };
        let pairs = matches!(style, PopReply::Pairs | PopReply::KeyPairs);
        z.for_range(s, e, max, |m, sc| {
            if pairs {
                reply.array(2);
            }
            reply.bulk(m);
            reply.double(sc);
        });
        z.remove_range(s, e);
        let deleted = drop_if_empty(locked, key);
        ctx.modified(key);
        notify_removal(ctx, if max { "zpopmax" } else { "zpopmin" }, key, deleted);
        return Ok(true);
    }
    Ok(false)
}

/// ZPOPMIN key [count]: the lowest-scored members with their scores.
fn zpopmin(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zpop_generic(ctx, argv, false)
}

/// ZPOPMAX key [count]: the highest-scored members with their scores.
fn zpopmax(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    zpop_generic(ctx, argv, true)
}

fn zpop_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], max: bool) -> Result<(), CmdError> {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match argv.get(2) {
        Some(a) => Some(positive(a, "ERR value is out of range, must be positive")?),
        None => None,
    };
    let style = if count.is_some() && ctx.reply.is_resp3() {
        PopReply::Pairs
    } else {
        PopReply::Flat
    };
    let key = argv[1];
    let mut locked = ctx.lock(&[key]);
    let result = match zset_mut(&mut locked, key) {
        Err(e) => Err(e),
        Ok(None) => Ok(false),
        Ok(Some(_)) if count == Some(0) => Ok(false),
        Ok(Some(_)) => pop_first(ctx, &mut locked, &[key], max, count.unwrap_or(1), style),
    };
    ctx.finish(locked);
    if !result? {
        ctx.reply.array(0);
    }
    Ok(())
}

/// A count that must be 0 or more; `msg` both for a bad number and a
/// negative one (Redis's getPositiveLongFromObjectOrReply with a message).
fn positive(arg: &[u8], msg: &'static str) -> Result<usize, CmdError> {
    match parse_i64_exact(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CmdError::Static(msg)),
    }
}

/// BZPOPMIN key [key ...] timeout: key, member, score of the first non-empty
/// set, waiting for one up to `timeout` seconds; null on timeout.
fn bzpopmin(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    bzpop_generic(ctx, argv, false)
}

/// BZPOPMAX key [key ...] timeout: as BZPOPMIN for the highest score.
fn bzpopmax(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    bzpop_generic(ctx, argv, true)
}

fn bzpop_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], max: bool) -> Result<(), CmdError> {
    let keys = &argv[1..argv.len() - 1];
    let wait = timeout(argv[argv.len() - 1])?;
    blocking_pop(ctx, argv, keys, max, 1, PopReply::KeyFlat, wait)
}

/// Pops from the first ready key, or blocks the client on all of them
/// (still under their locks, so no write slips in between).
fn blocking_pop(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    keys: &[&[u8]],
    max: bool,
    count: usize,
    style: PopReply,
    wait: Option<std::time::Duration>,
) -> Result<(), CmdError> {
    let mut locked = ctx.lock(keys);
    match pop_first(ctx, &mut locked, keys, max, count, style) {
        Ok(true) => {}
        Ok(false) => ctx.block(keys, argv, wait, TimeoutReply::NullArray),
        Err(e) => {
            ctx.finish(locked);
            return Err(e);
        }
    }
    ctx.finish(locked);
    Ok(())
}

/// The parsed tail of ZMPOP/BZMPOP: numkeys key [key ...] MIN|MAX
/// [COUNT count].
struct MpopArgs<'a> {
    keys: &'a [&'a [u8]],
    max: bool,
    count: usize,
}

fn parse_mpop<'a>(argv: &'a [&'a [u8]], numkeys_at: usize) -> Result<MpopArgs<'a>, CmdError> {
    let numkeys = match parse_i64_exact(argv[numkeys_at]) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err(CmdError::Static("ERR numkeys should be greater than 0")),
    };
    let where_at = numkeys_at
        .checked_add(numkeys)
        .and_then(|n| n.checked_add(1))
        .filter(|&w| w < argv.len())
        .ok_or(CmdError::Syntax)?;
    let max = if is(argv[where_at], "min") {
        false
    } else if is(argv[where_at], "max") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < argv.len() {
        if count.is_none() && is(argv[j], "count") && j + 1 < argv.len() {
            j += 1;
            match parse_i64_exact(argv[j]) {
                Some(n) if n >= 1 => count = Some(n as usize),
                _ => return Err(CmdError::Static("ERR count should be greater than 0")),
            }
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: &argv[numkeys_at + 1..where_at],
        max,
        count: count.unwrap_or(1),
    })
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: the key and its
/// popped [member, score] pairs, or null when every key is empty.
fn zmpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let a = parse_mpop(argv, 1)?;
    let mut locked = ctx.lock(a.keys);
    let popped = pop_first(ctx, &mut locked, a.keys, a.max, a.count, PopReply::KeyPairs);
    ctx.finish(locked);
    if !popped? {
        ctx.reply.null_array();
    }
    Ok(())
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: as ZMPOP,
/// waiting up to `timeout` seconds for a key; null on timeout.
fn bzmpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let a = parse_mpop(argv, 2)?;
    let wait = timeout(argv[1])?;
    blocking_pop(ctx, argv, a.keys, a.max, a.count, PopReply::KeyPairs, wait)
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER

/// ZRANDMEMBER key [count [WITHSCORES]]: one random member (null for no
/// key); with a count, that many distinct members (or, negative, that many
/// drawn independently), with scores if asked.
fn zrandmember(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    if argv.len() == 2 {
        return with_read(ctx, key, |r, z| match z {
            None => r.null(),
            Some(z) => {
                let i = rand::thread_rng().gen_range(0..z.len());
                match z.get(i) {
                    Some((m, _)) => r.bulk(m),
                    None => r.null(),
                }
            }
        });
    }
    let n = int(argv[2])?;
    if n == i64::MIN {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if argv.len() > 4 || (argv.len() == 4 && !is(argv[3], "withscores")) {
        return Err(CmdError::Syntax);
    }
    let withscores = argv.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(CmdError::Static("ERR value is out of range"));
    }
    with_read(ctx, key, |r, z| {
        let Some(z) = z else {
            return r.array(0);
        };
        let count = n.unsigned_abs() as usize;
        let size = z.len();
        let mut rng = rand::thread_rng();
        if count == 0 {
            r.array(0);
        } else if n < 0 || count == 1 {
            elements_header(r, count, withscores);
            for _ in 0..count {
                if let Some((m, s)) = z.get(rng.gen_range(0..size)) {
                    element(r, m, s, withscores);
                }
            }
        } else if count >= size {
            // Redis walks the whole set from its tail here.
            reply_range(r, z, 0, size, true, withscores);
        } else {
            elements_header(r, count, withscores);
            for i in rand::seq::index::sample(&mut rng, size, count) {
                if let Some((m, s)) = z.get(i) {
                    element(r, m, s, withscores);
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            // inf + -inf: Redis keeps 0 rather than NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES]: the union, ordered by score.
fn zunion(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, None, SetOp::Union, false)
}

/// ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES]: the intersection, ordered by score.
fn zinter(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, None, SetOp::Inter, false)
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]: the members of the first set
/// found in none of the others.
fn zdiff(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, None, SetOp::Diff, false)
}

/// ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]:
/// the size of the union stored in dst.
fn zunionstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, Some(argv[1]), SetOp::Union, false)
}

/// ZINTERSTORE dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]:
/// the size of the intersection stored in dst.
fn zinterstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, Some(argv[1]), SetOp::Inter, false)
}

/// ZDIFFSTORE dst numkeys key [key ...]: the size of the difference stored
/// in dst.
fn zdiffstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, Some(argv[1]), SetOp::Diff, false)
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]: the size of the
/// intersection, counting stopped at `limit` when it is not 0.
fn zintercard(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    setop_generic(ctx, argv, None, SetOp::Inter, true)
}

/// One input of a set operation, copied out of the store so that all
/// inputs can be read at once.
struct Source {
    items: Vec<(Vec<u8>, f64)>,
    weight: f64,
}

/// Redis's zunionInterDiffGenericCommand.
fn setop_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    dst: Option<&[u8]>,
    op: SetOp,
    card_only: bool,
) -> Result<(), CmdError> {
    let numkeys_at = if dst.is_some() { 2 } else { 1 };
    let setnum = int(argv[numkeys_at])?;
    if setnum < 1 {
        return Err(CmdError::Owned(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(argv[0]).to_lowercase()
        )));
    }
    if setnum as u64 > (argv.len() - numkeys_at - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let keys = &argv[numkeys_at + 1..numkeys_at + 1 + setnum];
    let mut lock_keys: Vec<&[u8]> = keys.to_vec();
    if let Some(d) = dst {
        lock_keys.push(d);
    }
    let limits = limits(ctx);
    let mut locked = ctx.lock(&lock_keys);
    let mut sources = Vec::with_capacity(setnum);
    for &k in keys {
        match source_items(&mut locked, k) {
            Ok(items) => {
                ctx.read_lookup(&mut locked, k, items.is_some());
                let items = items.unwrap_or_default();
                sources.push(Source { items, weight: 1.0 });
            }
            Err(e) => {
                // Found, of another type: a hit all the same.
                ctx.read_hit();
                ctx.finish(locked);
                return Err(e);
            }
        }
    }
    let parsed = parse_setop_options(
        argv,
        numkeys_at + 1 + setnum,
        &mut sources,
        op,
        dst,
        card_only,
    );
    let (how, withscores, limit) = match parsed {
        Ok(p) => p,
        Err(e) => {
            ctx.finish(locked);
            return Err(e);
        }
    };
    if op != SetOp::Diff {
        // Smallest first, as Redis orders its inputs (stable, like glibc's
        // merge-sort qsort), which fixes the order scores are added in.
        sources.sort_by_key(|s| s.items.len());
    }
    let mut result = ZSet::big();
    let mut cardinality = 0usize;
    match op {
        SetOp::Inter => {
            let lookups: Vec<HashMap<&[u8], f64>> = sources
                .iter()
                .map(|s| s.items.iter().map(|(m, sc)| (m.as_slice(), *sc)).collect())
                .collect();
            if let Some(first) = sources.first() {
                for (m, sc) in &first.items {
                    let mut score = first.weight * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    let mut all = true;
                    for (src, look) in sources.iter().zip(&lookups).skip(1) {
                        match look.get(m.as_slice()) {
                            Some(v) => aggregate(&mut score, v * src.weight, how),
                            None => {
                                all = false;
                                break;
                            }
                        }
                    }
                    if !all {
                        continue;
                    }
                    if card_only {
                        cardinality += 1;
                        if limit > 0 && cardinality >= limit {
                            break;
                        }
                    } else {
                        result.insert(m, score, limits);
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: HashMap<&[u8], f64> = HashMap::new();
            for src in &sources {
                for (m, sc) in &src.items {
                    let mut score = src.weight * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    acc.entry(m.as_slice())
                        .and_modify(|t| aggregate(t, score, how))
                        .or_insert(score);
                }
            }
            for (m, sc) in acc {
                result.insert(m, sc, limits);
            }
        }
        SetOp::Diff => {
            let others: Vec<HashMap<&[u8], ()>> = sources
                .iter()
                .skip(1)
                .map(|s| s.items.iter().map(|(m, _)| (m.as_slice(), ())).collect())
                .collect();
            if let Some(first) = sources.first() {
                for (m, sc) in &first.items {
                    if others.iter().all(|o| !o.contains_key(m.as_slice())) {
                        result.insert(m, *sc, limits);
                    }
                }
            }
        }
    }
    if let Some(dst) = dst {
        result.shrink_if_small(limits);
        let z = Some(result).filter(|z| !z.is_empty());
        let event = String::from_utf8_lossy(argv[0]).to_ascii_lowercase();
        let n = store_result(ctx, &mut locked, dst, z, &event);
        ctx.finish(locked);
        ctx.reply.int(n as i64);
        return Ok(());
    }
    ctx.finish(locked);
    if card_only {
        ctx.reply.int(cardinality as i64);
    } else {
        reply_range(ctx.reply, &result, 0, result.len(), false, withscores);
    }
    Ok(())
}

/// The options after the keys: WEIGHTS and AGGREGATE (not for ZDIFF or
/// ZINTERCARD), WITHSCORES (not for the STORE forms), LIMIT (ZINTERCARD).
/// Returns (aggregate, withscores, limit).
fn parse_setop_options(
    argv: &[&[u8]],
    mut j: usize,
    sources: &mut [Source],
    op: SetOp,
    dst: Option<&[u8]>,
    card_only: bool,
) -> Result<(Aggregate, bool, usize), CmdError> {
    let (mut how, mut withscores, mut limit) = (Aggregate::Sum, false, 0usize);
    let weighted = op != SetOp::Diff && !card_only;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = argv[j];
        if weighted && remaining > sources.len() && is(a, "weights") {
            for (i, src) in sources.iter_mut().enumerate() {
                src.weight = super::args::parse_f64(argv[j + 1 + i])
                    .ok_or(CmdError::Static("ERR weight value is not a float"))?;
            }
            j += 1 + sources.len();
        } else if weighted && remaining >= 2 && is(a, "aggregate") {
            let v = argv[j + 1];
            how = if is(v, "sum") {
                Aggregate::Sum
            } else if is(v, "min") {
                Aggregate::Min
            } else if is(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && is(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is(a, "limit") {
            limit = positive(argv[j + 1], "ERR LIMIT can't be negative")?;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((how, withscores, limit))
}

// ---------------------------------------------------------------------------
// ZSCAN

/// Formats a score as Redis's `d2string` does for ZSCAN: integral values
/// within ±2^62 as integers, everything else as %.17g.
fn d2string(score: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if score.is_finite() && (-LIMIT..=LIMIT).contains(&score) && score.fract() == 0.0 {
        (score as i64).to_string()
    } else {
        ferrokv_resp::format_double(score)
    }
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]: the next cursor and a
/// flat list of members and scores (see [`ZSet::scan`]).
fn zscan(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let cursor = parse_cursor(argv[2]).ok_or(CmdError::Static("ERR invalid cursor"))?;
    let mut locked = ctx.lock(&[key]);
    let z = match zset_read(ctx, &mut locked, key) {
        Ok(z) => z,
        Err(e) => {
            ctx.finish(locked);
            return Err(e);
        }
    };
    let Some(z) = z else {
        ctx.finish(locked);
        ctx.reply.array(2);
        ctx.reply.bulk(b"0");
        ctx.reply.array(0);
        return Ok(());
    };
    let mut pattern = None;
    let mut count = 10usize;
    let mut j = 3;
    let mut bad = None;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        if is(argv[j], "count") && more {
            match int(argv[j + 1]) {
                Ok(n) if n >= 1 => count = n as usize,
                Ok(_) => bad = Some(CmdError::Syntax),
                Err(e) => bad = Some(e),
            }
        } else if is(argv[j], "match") && more {
            pattern = Some(argv[j + 1]);
        } else {
            bad = Some(CmdError::Syntax);
        }
        if bad.is_some() {
            break;
        }
        j += 2;
    }
    if let Some(e) = bad {
        ctx.finish(locked);
        return Err(e);
    }
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let next = z.scan(cursor, count, |m, s| {
        if pattern.is_none_or(|p| crate::glob::matches(p, m, false)) {
            found.push((m.to_vec(), s));
        }
    });
    ctx.finish(locked);
    let r = &mut ctx.reply;
    r.array(2);
    r.bulk(next.to_string().as_bytes());
    r.array(found.len() * 2);
    for (m, s) in found {
        r.bulk(&m);
        r.bulk(d2string(s).as_bytes());
    }
    Ok(())
}

/// A SCAN cursor as Redis's parseScanCursorOrReply reads it with
/// `strtoul`: an optional sign (a negative value wraps around), decimal
/// digits, the empty string being 0; no leading space, no overflow.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let (neg, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() {
        // strtoul reads nothing: a bare sign is left unread, "" is 0.
        return arg.is_empty().then_some(0);
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}
