//! SORT and SORT_RO: Redis 7.0's sortCommandGeneric.
//!
//! The command reads the elements of a list, set or sorted set through one
//! accessor ([`source`]), so a collection type joins SORT with one match
//! arm there; the sorting itself ([`sort_elements`]) is a pure function of
//! the elements, the options and a way to look keys up, which is what the
//! unit tests below exercise.
//!
//! Redis's rules kept here: a BY pattern without `*` means "don't sort"
//! (native order for lists and sorted sets, with DESC and LIMIT applied
//! to it; a set keeps its iteration order, except that STORE sorts it
//! ALPHA so that what is stored is deterministic); numeric sorting uses
//! `strtod` and breaks equal scores by comparing the elements; ALPHA
//! compares bytes (the C collation Redis runs under); a missing BY key
//! sorts as score 0 (or before everything with ALPHA); a GET of a missing
//! key or field is nil (stored as an empty string by STORE).

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is};
use super::{acl, flags, CmdError, Command, Ctx, Keys};
use crate::pubsub::events;
use crate::store::list::{End, List};
use crate::store::{Locked, Object, Value, ValueRef};

const fn cmd(
    name: &'static str,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity: -2,
        flags,
        keys: Keys {
            first: 1,
            last: 1,
            step: 1,
        },
        acl: acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS,
        handler,
        subcommands: &[],
        group: "generic",
        summary,
        since,
    }
}

pub const COMMANDS: &[Command] = &[
    cmd(
        "sort",
        flags::WRITE | flags::DENYOOM | flags::MOVABLE_KEYS,
        sort,
        "Sort the elements in a list, set or sorted set",
        "1.0.0",
    ),
    cmd(
        "sort_ro",
        flags::READONLY | flags::MOVABLE_KEYS,
        sort_ro,
        "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
        "7.0.0",
    ),
];

/// The options of one SORT call.
#[derive(Debug, Default)]
struct Options<'a> {
    by: Option<&'a [u8]>,
    /// BY with a pattern without `*`: keep the native order.
    dontsort: bool,
    gets: Vec<&'a [u8]>,
    limit_start: i64,
    /// Negative: to the end.
    limit_count: i64,
    desc: bool,
    alpha: bool,
    /// STORE's destination key.
    store: Option<&'a [u8]>,
}

/// Parses the options after the key, in Redis's order and with its errors
/// (a bad LIMIT number is "not an integer", anything unknown a syntax
/// error). SORT_RO knows no STORE: there it is a syntax error, as in Redis.
fn parse<'a>(argv: &[&'a [u8]], readonly: bool) -> Result<Options<'a>, CmdError> {
    let mut o = Options {
        limit_count: -1,
        ..Options::default()
    };
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if is(a, "asc") {
            o.desc = false;
        } else if is(a, "desc") {
            o.desc = true;
        } else if is(a, "alpha") {
            o.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            o.limit_start = int(argv[j + 1])?;
            o.limit_count = int(argv[j + 2])?;
            j += 2;
        } else if is(a, "by") && left >= 1 {
            o.by = Some(argv[j + 1]);
            o.dontsort = !argv[j + 1].contains(&b'*');
            j += 1;
        } else if is(a, "get") && left >= 1 {
            o.gets.push(argv[j + 1]);
            j += 1;
        } else if !readonly && is(a, "store") && left >= 1 {
            o.store = Some(argv[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// The elements of a sortable value, as its type loads them for SORT.
struct Source {
    elements: Vec<Vec<u8>>,
    /// Lists and sorted sets: the elements come in their native order,
    /// which "don't sort" keeps (with DESC reversing it).
    ordered: bool,
}

/// The one place that knows which types SORT reads: lists, sets and
/// sorted sets, each one match arm; every other type is WRONGTYPE.
fn source(v: ValueRef<'_>) -> Result<Source, CmdError> {
    match v {
        ValueRef::Obj(Object::List(l)) => Ok(Source {
            elements: l.iter().map(<[u8]>::to_vec).collect(),
            ordered: true,
        }),
        ValueRef::Obj(Object::Set(s)) => Ok(Source {
            elements: s.iter().map(|m| m.with_bytes(<[u8]>::to_vec)).collect(),
            ordered: false,
        }),
        ValueRef::Obj(Object::ZSet(z)) => {
            let mut elements = Vec::with_capacity(z.len());
            z.for_range(0, z.len(), false, |m, _| elements.push(m.to_vec()));
            Ok(Source {
                elements,
                ordered: true,
            })
        }
        ValueRef::Int(_) | ValueRef::Emb(_) | ValueRef::Obj(_) => Err(CmdError::WrongType),
    }
}

/// Where a pattern points for one element: the element itself (`#`), or
/// a key and, with `->field`, a field of the hash there.
#[derive(Debug, PartialEq)]
enum Target {
    Element,
    Key(Vec<u8>, Option<Vec<u8>>),
}

/// Redis's lookupKeyByPattern, the substitution part: the first `*` is
/// replaced by the element; a `->` after it followed by at least one byte
/// names a hash field. None for a pattern without `*` (a fixed key makes
/// no sense to GET).
fn target(pattern: &[u8], element: &[u8]) -> Option<Target> {
    if pattern == b"#" {
        return Some(Target::Element);
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let rest = &pattern[star + 1..];
    let arrow = rest
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < rest.len());
    let (post, field) = match arrow {
        Some(i) => (&rest[..i], Some(rest[i + 2..].to_vec())),
        None => (rest, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + post.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(post);
    Some(Target::Key(key, field))
}

/// A score as Redis's SORT reads it: C `strtod` over the text up to its
/// first NUL, which must consume all of it (an empty text is 0; leading
/// space is allowed); None for out of range or NaN.
fn sort_score(s: &[u8]) -> Option<f64> {
    let s = s.split(|&b| b == 0).next().unwrap_or_default();
    let mut buf = Vec::with_capacity(s.len() + 1);
    buf.extend_from_slice(s);
    buf.push(0);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // Safety: buf is NUL-terminated; strtod reads up to the NUL and stores
    // a pointer into buf in `end`.
    let (v, errno, consumed) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(buf.as_ptr() as *const libc::c_char, &mut end);
        (
            v,
            *libc::__errno_location(),
            end as usize - buf.as_ptr() as usize,
        )
    };
    (consumed == s.len() && errno != libc::ERANGE && !v.is_nan()).then_some(v)
}

/// strcoll in the C locale: bytes compared up to the first NUL.
fn coll(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let cut = |s: &[u8]| s.split(|&c| c == 0).next().unwrap_or_default().to_vec();
    cut(a).cmp(&cut(b))
}

/// Sorts (or not) and applies LIMIT and GET: the reply's items, nil for a
/// GET that found nothing. `fetch` resolves a pattern's target to a
/// string (a string key, or a hash field).
fn sort_elements(
    src: Source,
    o: &Options<'_>,
    mut fetch: impl FnMut(&Target) -> Option<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, CmdError> {
    let len = src.elements.len() as i64;
    let mut start = o.limit_start.max(0);
    let mut end = if o.limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(o.limit_count) - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);

    let mut elements = src.elements;
    if src.ordered && o.dontsort {
        // The native order, reversed by DESC, and only the LIMIT range.
        if o.desc {
            elements.reverse();
        }
        if end >= start {
            elements.truncate(end as usize + 1);
            elements.drain(..start as usize);
        } else {
            elements.clear();
        }
        end -= start;
        start = 0;
    }

    let mut bad_score = false;
    if !o.dontsort {
        // (element, score, compare-object) as Redis's redisSortObject.
        let mut v: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = Vec::with_capacity(elements.len());
        for e in elements {
            let byval = match o.by {
                Some(pattern) => match target(pattern, &e) {
                    Some(Target::Element) => Some(e.clone()),
                    Some(t) => fetch(&t),
                    None => None,
                },
                None => Some(e.clone()),
            };
            let (mut score, mut cmp) = (0.0, None);
            if let Some(b) = byval {
                if o.alpha {
                    if o.by.is_some() {
                        cmp = Some(b);
                    }
                } else {
                    match sort_score(&b) {
                        Some(s) => score = s,
                        None => bad_score = true,
                    }
                }
            }
            v.push((e, score, cmp));
        }
        let by = o.by.is_some();
        v.sort_by(|a, b| {
            let ord = if !o.alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by {
                match (&a.2, &b.2) {
                    (Some(x), Some(y)) => coll(x, y),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                }
            } else {
                coll(&a.0, &b.0)
            };
            if o.desc {
                ord.reverse()
            } else {
                ord
            }
        });
        elements = v.into_iter().map(|(e, _, _)| e).collect();
    }
    if bad_score {
        return Err(CmdError::Static(
            "ERR One or more scores can't be converted into double",
        ));
    }

    let mut out = Vec::new();
    if end < start {
        return Ok(out);
    }
    for e in &elements[start as usize..=end as usize] {
        if o.gets.is_empty() {
            out.push(Some(e.clone()));
        }
        for pattern in &o.gets {
            out.push(match target(pattern, e) {
                Some(Target::Element) => Some(e.clone()),
                Some(t) => fetch(&t),
                None => None,
            });
        }
    }
    Ok(out)
}

/// A key's value as SORT's patterns read it: a string key, or a field of
/// a hash key; None for anything else or nothing.
fn fetch(ctx: &mut Ctx<'_>, locked: &mut Locked<'_>, t: &Target) -> Option<Vec<u8>> {
    let Target::Key(key, field) = t else {
        return None;
    };
    let Some(mut e) = locked.get(key) else {
        ctx.read_lookup(locked, key, false);
        return None;
    };
    ctx.read_hit();
    match (field, e.value()) {
        (None, ValueRef::Int(n)) => Some(itoa::Buffer::new().format(n).as_bytes().to_vec()),
        (None, ValueRef::Emb(b)) => Some(b.to_vec()),
        (None, ValueRef::Obj(Object::Raw(b))) => Some(b.clone()),
        (Some(f), ValueRef::Obj(Object::Hash(_))) => match e.get_mut().object_mut() {
            Some(Object::Hash(h)) => h.get(f).map(<[u8]>::to_vec),
            _ => None,
        },
        _ => None,
    }
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern
/// ...]] [ASC|DESC] [ALPHA] [STORE destination]: the sorted elements (or,
/// with GET, the looked-up values, nil where missing); with STORE, the
/// number of elements stored as a list at destination (an empty result
/// deletes it). Errors: syntax, not an integer (LIMIT), WRONGTYPE, "One
/// or more scores can't be converted into double".
fn sort(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    sort_generic(ctx, argv, false)
}

/// SORT_RO key ...: SORT without STORE, for read-only contexts.
fn sort_ro(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    sort_generic(ctx, argv, true)
}

/// Redis's sortCommandGeneric.
fn sort_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], readonly: bool) -> Result<(), CmdError> {
    let mut o = parse(argv, readonly)?;
    let key = argv[1];
    // Patterns name keys known only from the elements: hold the whole
    // database so that the result is one consistent snapshot.
    let patterns = (o.by.is_some() && !o.dontsort) || o.gets.iter().any(|g| *g != b"#");
    let mut locked = if patterns {
        ctx.server.keyspace.lock_db(ctx.client.db, ctx.now_ms)
    } else {
        match o.store {
            Some(dst) => ctx.lock(&[key, dst]),
            None => ctx.lock(&[key]),
        }
    };
    let src = match locked.get(key) {
        Some(e) => {
            ctx.read_hit();
            source(e.value())
        }
        None => {
            ctx.read_lookup(&mut locked, key, false);
            Ok(Source {
                elements: Vec::new(),
                ordered: true,
            })
        }
    };
    if let Ok(Source { ordered: false, .. }) = &src {
        if o.dontsort && o.store.is_some() {
            // A set's iteration order is not to be stored: Redis sorts it
            // by the elements instead.
            o.dontsort = false;
            o.alpha = true;
            o.by = None;
        }
    }
    let result = src.and_then(|src| sort_elements(src, &o, |t| fetch(ctx, &mut locked, t)));
    let items = match (result, o.store) {
        (Ok(items), Some(dst)) => {
            let n = store(ctx, &mut locked, dst, &items);
            ctx.finish(locked);
            ctx.reply.int(n as i64);
            return Ok(());
        }
        (result, _) => {
            ctx.finish(locked);
            result?
        }
    };
    ctx.reply.array(items.len());
    for item in &items {
        match item {
            Some(v) => ctx.reply.bulk(v),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

/// STORE: the result as a list at `dst` (a missing GET value stored as an
/// empty string), replacing whatever was there, or `dst` deleted when the
/// result is empty; returns the stored length.
fn store(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    dst: &[u8],
    items: &[Option<Vec<u8>>],
) -> usize {
    if items.is_empty() {
        if locked.remove(dst).is_some() {
            ctx.modified(dst);
            ctx.notify(events::GENERIC, "del", dst);
        }
        return 0;
    }
    let fill = ctx.server.config.list_max_listpack_size.load(Relaxed);
    let fill = fill.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let mut list = List::new();
    for item in items {
        list.push(End::Tail, item.as_deref().unwrap_or_default(), fill);
    }
    let old = locked.set(dst, Value::Obj(Box::new(Object::List(list))), None);
    ctx.modified(dst);
    ctx.notify_new(&old, dst);
    ctx.notify(events::LIST, "sortstore", dst);
    items.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn strs(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn run(
        elements: &[&str],
        ordered: bool,
        args: &[&str],
        db: &HashMap<&str, &str>,
    ) -> Result<Vec<Option<String>>, CmdError> {
        let mut argv: Vec<&[u8]> = vec![b"sort", b"k"];
        argv.extend(args.iter().map(|a| a.as_bytes()));
        // As SORT_RO, which refuses STORE (tested in parse_errors).
        let o = parse(&argv, true)?;
        let src = Source {
            elements: strs(elements),
            ordered,
        };
        let out = sort_elements(src, &o, |t| match t {
            Target::Key(k, None) => db
                .get(std::str::from_utf8(k).ok()?)
                .map(|v| v.as_bytes().to_vec()),
            Target::Key(k, Some(f)) => {
                let name = format!(
                    "{}->{}",
                    std::str::from_utf8(k).ok()?,
                    std::str::from_utf8(f).ok()?
                );
                db.get(name.as_str()).map(|v| v.as_bytes().to_vec())
            }
            Target::Element => None,
        })?;
        Ok(out
            .into_iter()
            .map(|v| v.map(|v| String::from_utf8(v).unwrap()))
            .collect())
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn numeric_and_alpha() {
        let db = HashMap::new();
        let e = ["10", "9", "1.5", "-2", "9"];
        assert_eq!(
            run(&e, true, &[], &db).unwrap(),
            some(&["-2", "1.5", "9", "9", "10"])
        );
        assert_eq!(
            run(&e, true, &["DESC"], &db).unwrap(),
            some(&["10", "9", "9", "1.5", "-2"])
        );
        assert_eq!(
            run(&e, true, &["ALPHA"], &db).unwrap(),
            some(&["-2", "1.5", "10", "9", "9"])
        );
        assert_eq!(
            run(&["a", "1"], true, &[], &db),
            Err(CmdError::Static(
                "ERR One or more scores can't be converted into double"
            ))
        );
        // strtod's view: empty is 0, leading space fine, trailing not.
        assert_eq!(
            run(&["3", "", " 2"], true, &[], &db).unwrap(),
            some(&["", " 2", "3"])
        );
        assert!(run(&["2 "], true, &[], &db).is_err());
    }

    #[test]
    fn equal_scores_compare_elements() {
        let db = HashMap::new();
        assert_eq!(
            run(&["b", "a", "c"], true, &["BY", "w_*"], &db).unwrap(),
            some(&["a", "b", "c"])
        );
        assert_eq!(
            run(&["1.0", "1", "01"], true, &[], &db).unwrap(),
            some(&["01", "1", "1.0"])
        );
    }

    #[test]
    fn by_and_get_patterns() {
        let db: HashMap<&str, &str> = [
            ("w_a", "3"),
            ("w_b", "1"),
            ("w_c", "2"),
            ("o_a", "A"),
            ("o_c", "C"),
            ("h_a->f", "x"),
            ("h_b->f", "y"),
        ]
        .into_iter()
        .collect();
        let e = ["a", "b", "c"];
        assert_eq!(
            run(&e, false, &["BY", "w_*"], &db).unwrap(),
            some(&["b", "c", "a"])
        );
        assert_eq!(
            run(&e, false, &["BY", "w_*", "GET", "o_*", "GET", "#"], &db).unwrap(),
            vec![
                None,
                Some("b".into()),
                Some("C".into()),
                Some("c".into()),
                Some("A".into()),
                Some("a".into())
            ]
        );
        assert_eq!(
            run(&e, false, &["BY", "h_*->f", "ALPHA", "DESC"], &db).unwrap(),
            some(&["b", "a", "c"])
        );
        assert_eq!(
            run(&e, false, &["GET", "h_*->f", "GET", "nostar", "ALPHA"], &db).unwrap(),
            vec![Some("x".into()), None, Some("y".into()), None, None, None]
        );
    }

    #[test]
    fn nosort_keeps_native_order_with_limit() {
        let db = HashMap::new();
        let e = ["c", "a", "b", "d"];
        assert_eq!(
            run(&e, true, &["BY", "nosort"], &db).unwrap(),
            some(&["c", "a", "b", "d"])
        );
        assert_eq!(
            run(&e, true, &["BY", "nosort", "DESC", "LIMIT", "1", "2"], &db).unwrap(),
            some(&["b", "a"])
        );
        assert_eq!(
            run(&e, true, &["LIMIT", "1", "-1", "ALPHA"], &db).unwrap(),
            some(&["b", "c", "d"])
        );
        assert_eq!(
            run(&e, true, &["LIMIT", "10", "2", "ALPHA"], &db).unwrap(),
            some(&[])
        );
        assert_eq!(
            run(&e, true, &["LIMIT", "-5", "1", "ALPHA"], &db).unwrap(),
            some(&["a"])
        );
        assert_eq!(
            run(
                &e,
                true,
                &["LIMIT", "2", "9223372036854775807", "ALPHA"],
                &db
            )
            .unwrap(),
            some(&["c", "d"])
        );
    }

    #[test]
    fn parse_errors() {
        let db = HashMap::new();
        assert_eq!(
            run(&[], true, &["LIMIT", "x", "1"], &db),
            Err(CmdError::NotInteger)
        );
        assert_eq!(run(&[], true, &["LIMIT", "1"], &db), Err(CmdError::Syntax));
        assert_eq!(run(&[], true, &["BY"], &db), Err(CmdError::Syntax));
        assert_eq!(run(&[], true, &["STORE", "d"], &db), Err(CmdError::Syntax));
        let argv: Vec<&[u8]> = vec![b"sort", b"k", b"STORE", b"d"];
        assert_eq!(parse(&argv, false).map(|o| o.store), Ok(Some(&b"d"[..])));
        assert!(matches!(parse(&argv[..3], false), Err(CmdError::Syntax)));
    }

    #[test]
    fn pattern_substitution() {
        assert_eq!(target(b"#", b"x"), Some(Target::Element));
        assert_eq!(target(b"abc", b"x"), None);
        assert_eq!(
            target(b"a*b->f", b"x"),
            Some(Target::Key(b"axb".to_vec(), Some(b"f".to_vec())))
        );
        // "->" with nothing after it is part of the key.
        assert_eq!(
            target(b"a*->", b"x"),
            Some(Target::Key(b"ax->".to_vec(), None))
        );
        assert_eq!(
            target(b"->*", b"x"),
            Some(Target::Key(b"->x".to_vec(), None))
        );
    }
}
