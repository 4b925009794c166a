//! Differential tests: every corpus in `tests/corpus/*.txt` is replayed
//! against a real redis-server and against ferrokv, and each reply must be
//! byte-for-byte identical (or equal under the corpus's directives).
//!
//! This is a Rust port of the `respdiff` corpus semantics: the same file
//! format (shell-style quoting, `\xHH` escapes, `#` comments, the `@sort`
//! `@type` `@approx` `@ttl` `@error-prefix` `@noreply` `@sleep` `@pipeline`
//! `@resp3` directives), the same per-file reset (fresh connections,
//! `FLUSHALL`, `SELECT 0`), the same handling of closed connections, and the
//! same mismatch report. It lives in the repository so that a clone can run
//! the whole differential suite with `cargo test --workspace` alone.
//!
//! Environment:
//! - `FERROKV_CORPUS=strings` (or `strings,keys`) runs only those corpora;
//! - `FERROKV_DIFF_TIMEOUT=SECONDS` changes the per-reply deadline (5 s);
//! - `FERROKV_DIFF_SELF=1` uses a second redis-server as the candidate, to
//!   check that a corpus is deterministic (it must pass Redis against Redis).
//!
//! Run with `-- --nocapture` to see the per-file counts of a passing run.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{require_redis_server, ServerProcess};

// ---------------------------------------------------------------------------
// Corpus format
// ---------------------------------------------------------------------------

/// Directives that apply to the next command only.
#[derive(Clone, Debug, Default, PartialEq)]
struct Mods {
    sort: bool,
    type_only: bool,
    /// `@ttl`: the tolerance, set once the command name is known (1, or 50
    /// for millisecond commands whose name starts with `P`).
    ttl: Option<f64>,
    error_prefix: bool,
    noreply: bool,
    approx: Option<f64>,
}

impl Mods {
    fn is_empty(&self) -> bool {
        *self == Mods::default()
    }
}

#[derive(Debug, PartialEq)]
struct Cmd {
    /// `path:line`, for messages.
    at: String,
    /// The source line as written, for messages.
    display: String,
    args: Vec<Vec<u8>>,
    mods: Mods,
}

#[derive(Debug, PartialEq)]
enum Step {
    /// Commands written in one send; a single command unless `@pipeline`.
    Batch(Vec<Cmd>),
    Sleep(Duration),
    Resp3,
}

/// A corpus error or an unreachable server: ends the run.
#[derive(Debug)]
struct Fatal(String);

/// Characters removed around each line (Python's `bytes.strip()`).
fn is_strip_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Characters that separate a directive's words (Python's `str.split()` on
/// a line decoded as Latin-1).
fn is_split_space(b: u8) -> bool {
    is_strip_space(b) || matches!(b, 0x1c..=0x1f | 0x85 | 0xa0)
}

/// A line's bytes as text, one character per byte (Latin-1).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_strip_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_strip_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn parse_corpus(name: &str, text: &[u8]) -> Result<Vec<Step>, Fatal> {
    let mut steps: Vec<Step> = Vec::new();
    let mut mods = Mods::default();
    let mut has_mods = false;
    // Commands still owed to an @pipeline.
    let mut wanted = 0usize;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let at = format!("{name}:{}", i + 1);
        let line = trim(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line[0] == b'@' {
            match parse_directive(&at, line)? {
                Directive::Modifier(apply) => {
                    apply(&mut mods);
                    has_mods = true;
                }
                Directive::Step(step_name, _) if has_mods || wanted > 0 => {
                    return Err(Fatal(format!(
                        "{at}: @{step_name} cannot stand between a directive and its command"
                    )));
                }
                Directive::Step(_, StepKind::Pipeline(n)) => {
                    steps.push(Step::Batch(Vec::new()));
                    wanted = n;
                }
                Directive::Step(_, StepKind::Sleep(d)) => steps.push(Step::Sleep(d)),
                Directive::Step(_, StepKind::Resp3) => steps.push(Step::Resp3),
            }
            continue;
        }
        let cmd = parse_command(&at, line, std::mem::take(&mut mods))?;
        has_mods = false;
        match steps.last_mut() {
            Some(Step::Batch(batch)) if wanted > 0 => {
                batch.push(cmd);
                wanted -= 1;
            }
            _ => steps.push(Step::Batch(vec![cmd])),
        }
    }
    if has_mods || wanted > 0 {
        return Err(Fatal(format!(
            "{name}: file ends before the command a directive applies to"
        )));
    }
    Ok(steps)
}

enum StepKind {
    Pipeline(usize),
    Sleep(Duration),
    Resp3,
}

enum Directive {
    Modifier(Box<dyn Fn(&mut Mods)>),
    Step(String, StepKind),
}

fn parse_directive(at: &str, line: &[u8]) -> Result<Directive, Fatal> {
    let words: Vec<String> = line[1..]
        .split(|&b| is_split_space(b))
        .filter(|w| !w.is_empty())
        .map(latin1)
        .collect();
    let name = words.first().cloned().unwrap_or_default();
    let params = words.get(1..).unwrap_or_default();
    let no_argument = |d: Directive| {
        if params.is_empty() {
            Ok(d)
        } else {
            Err(Fatal(format!("{at}: @{name} takes no argument")))
        }
    };
    // The numeric argument of @approx, @sleep and @pipeline.
    let number = || -> Result<(f64, &str), Fatal> {
        let needs = || Fatal(format!("{at}: @{name} needs one numeric argument"));
        let [param] = params else {
            return Err(needs());
        };
        let value = if name == "pipeline" {
            param
                .parse::<i64>()
                .map(|n| n as f64)
                .map_err(|_| needs())?
        } else {
            param.parse::<f64>().map_err(|_| needs())?
        };
        if !value.is_finite() || value < 0.0 || (name == "pipeline" && value < 1.0) {
            return Err(Fatal(format!(
                "{at}: @{name} argument out of range: {param}"
            )));
        }
        Ok((value, param))
    };
    let modifier = |f: Box<dyn Fn(&mut Mods)>| Directive::Modifier(f);
    match name.as_str() {
        "sort" => no_argument(modifier(Box::new(|m| m.sort = true))),
        "type" => no_argument(modifier(Box::new(|m| m.type_only = true))),
        // The tolerance depends on the command and is set by parse_command.
        "ttl" => no_argument(modifier(Box::new(|m| m.ttl = Some(0.0)))),
        "error-prefix" => no_argument(modifier(Box::new(|m| m.error_prefix = true))),
        "noreply" => no_argument(modifier(Box::new(|m| m.noreply = true))),
        "approx" => {
            let (rel, _) = number()?;
            Ok(modifier(Box::new(move |m| m.approx = Some(rel))))
        }
        "sleep" => {
            let (ms, _) = number()?;
            Ok(Directive::Step(
                name.clone(),
                StepKind::Sleep(Duration::from_secs_f64(ms / 1000.0)),
            ))
        }
        "pipeline" => {
            let (n, _) = number()?;
            Ok(Directive::Step(
                name.clone(),
                StepKind::Pipeline(n as usize),
            ))
        }
        "resp3" => no_argument(Directive::Step(name.clone(), StepKind::Resp3)),
        _ => Err(Fatal(format!("{at}: unknown directive @{name}"))),
    }
}

/// Splits a line as Python's `shlex.split` does (POSIX mode, no comments):
/// whitespace separates words, `'...'` is literal, inside `"..."` only `\"`
/// and `\\` are escapes, and outside quotes a backslash escapes any byte.
fn shlex_split(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut in_word = false;
    let mut bytes = line.iter().copied();
    while let Some(c) = bytes.next() {
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                continue;
            }
            b'\\' => word.push(bytes.next().ok_or("No escaped character")?),
            b'\'' => loop {
                match bytes.next().ok_or("No closing quotation")? {
                    b'\'' => break,
                    other => word.push(other),
                }
            },
            b'"' => loop {
                match bytes.next().ok_or("No closing quotation")? {
                    b'"' => break,
                    b'\\' => match bytes.next().ok_or("No escaped character")? {
                        escaped @ (b'"' | b'\\') => word.push(escaped),
                        other => word.extend_from_slice(&[b'\\', other]),
                    },
                    other => word.push(other),
                }
            },
            other => word.push(other),
        }
        in_word = true;
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Replaces each `\xHH` by that byte, left to right, without rescanning
/// what a replacement produced.
fn decode_hex_escapes(word: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if let [b'\\', b'x', h, l, ..] = word[i..] {
            if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(word[i]);
        i += 1;
    }
    out
}

const MAX_SHOWN: usize = 200;
const MAX_ITEMS_SHOWN: usize = 50;

fn parse_command(at: &str, line: &[u8], mut mods: Mods) -> Result<Cmd, Fatal> {
    let words = shlex_split(line).map_err(|e| Fatal(format!("{at}: {e}")))?;
    let args: Vec<Vec<u8>> = words.iter().map(|w| decode_hex_escapes(w)).collect();
    if mods.ttl.is_some() {
        let millis = args
            .first()
            .is_some_and(|name| name.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'p')));
        mods.ttl = Some(if millis { 50.0 } else { 1.0 });
    }
    let mut display = String::from_utf8_lossy(line).into_owned();
    let chars = display.chars().count();
    if chars > MAX_SHOWN {
        display = display.chars().take(MAX_SHOWN).collect();
        display.push_str(&format!("... ({chars} chars)"));
    }
    Ok(Cmd {
        at: at.to_string(),
        display,
        args,
        mods,
    })
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Data {
    /// The payload of a line type (`+ - : , # (`) or a bulk type (`$ ! =`).
    Bytes(Vec<u8>),
    /// The elements of an aggregate; a map holds keys and values in turn,
    /// an attribute its pairs followed by the reply it annotates.
    Items(Vec<Reply>),
}

#[derive(Clone, Debug, PartialEq)]
struct Reply {
    /// The RESP type byte.
    kind: u8,
    /// `None` for nulls (`$-1`, `*-1`, `_`).
    data: Option<Data>,
    /// The exact bytes received.
    raw: Vec<u8>,
}

/// What a command produced: a reply, or why none arrived.
type Outcome = Result<Reply, Lost>;

/// The connection failed instead of producing a reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lost(String);

fn is_line_type(k: u8) -> bool {
    b"+-:,#(".contains(&k)
}
fn is_bulk_type(k: u8) -> bool {
    b"$!=".contains(&k)
}
fn is_aggregate(k: u8) -> bool {
    b"*%~>|".contains(&k)
}
fn is_error(k: u8) -> bool {
    k == b'-' || k == b'!'
}

/// Replies nested deeper than this are rejected rather than risk the stack
/// of a test thread (real replies nest a handful of levels).
const MAX_DEPTH: usize = 128;

/// Parses one complete reply at the front of `buf`: `Ok(None)` while it is
/// incomplete, `Err` with a description if the bytes are not RESP.
fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut pos = 0;
    Ok(parse_node(buf, &mut pos, 0)?.map(|r| (r, pos)))
}

fn parse_node(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("replies nested deeper than {MAX_DEPTH} levels"));
    }
    let start = *pos;
    let Some(end) = buf[start..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let header = &buf[start..start + end];
    *pos = start + end + 2;
    let (kind, text) = match header.split_first() {
        Some((&k, rest)) => (k, rest),
        None => (0, header),
    };
    let data = if is_line_type(kind) {
        Some(Data::Bytes(text.to_vec()))
    } else if kind == b'_' {
        None
    } else if is_bulk_type(kind) || is_aggregate(kind) {
        let valid = text == b"-1" || (!text.is_empty() && text.iter().all(u8::is_ascii_digit));
        if !valid || (text == b"-1" && kind != b'$' && kind != b'*') {
            return Err(format!(
                "bad length {} after '{}'",
                py_repr(&text[..text.len().min(40)]),
                kind as char
            ));
        }
        if text == b"-1" {
            None
        } else {
            // A length too large to represent can never be satisfied: wait
            // for more bytes, as a reader with unbounded integers would.
            let Ok(count) = latin1(text).parse::<usize>() else {
                return Ok(None);
            };
            if is_bulk_type(kind) {
                let Some(end) = pos.checked_add(count).and_then(|e| e.checked_add(2)) else {
                    return Ok(None);
                };
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(format!(
                        "{}{count} payload not followed by CRLF",
                        kind as char
                    ));
                }
                let payload = buf[*pos..end - 2].to_vec();
                *pos = end;
                Some(Data::Bytes(payload))
            } else {
                let count = match kind {
                    b'%' => count.checked_mul(2),
                    b'|' => count.checked_mul(2).and_then(|c| c.checked_add(1)),
                    _ => Some(count),
                };
                let Some(count) = count else {
                    return Ok(None);
                };
                let mut items = Vec::new();
                for _ in 0..count {
                    match parse_node(buf, pos, depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                Some(Data::Items(items))
            }
        }
    } else {
        return Err(format!(
            "unexpected type byte in {}",
            py_repr(&header[..header.len().min(40)])
        ));
    };
    Ok(Some(Reply {
        kind,
        data,
        raw: buf[start..*pos].to_vec(),
    }))
}

/// Bytes as Python writes a `bytes` literal, for protocol error messages.
fn py_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b as char == quote => out.push_str(&format!("\\{quote}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

fn items(r: &Reply) -> &[Reply] {
    match &r.data {
        Some(Data::Items(items)) => items,
        _ => &[],
    }
}

fn bytes(r: &Reply) -> &[u8] {
    match &r.data {
        Some(Data::Bytes(b)) => b,
        _ => &[],
    }
}

/// Whether the candidate's outcome matches the reference's under `mods`.
fn agree(reference: &Outcome, candidate: &Outcome, mods: &Mods) -> bool {
    match (reference, candidate) {
        (Ok(r), Ok(c)) => agree_replies(r, c, mods, true),
        (r, c) => r == c,
    }
}

fn agree_replies(r: &Reply, c: &Reply, mods: &Mods, top: bool) -> bool {
    if r.raw == c.raw {
        return true;
    }
    if mods.type_only {
        return shape(r) == shape(c);
    }
    if mods.is_empty() || r.kind != c.kind || r.data.is_none() || c.data.is_none() {
        return false;
    }
    if is_error(r.kind) {
        let code = |b: &[u8]| b.split(|&x| x == b' ').next().unwrap_or_default().to_vec();
        return mods.error_prefix && code(bytes(r)) == code(bytes(c));
    }
    if is_aggregate(r.kind) {
        let (ours, theirs): (Vec<&Reply>, Vec<&Reply>) = if top && mods.sort {
            (sorted_elements(r), sorted_elements(c))
        } else {
            (items(r).iter().collect(), items(c).iter().collect())
        };
        return ours.len() == theirs.len()
            && ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| agree_replies(a, b, mods, false));
    }
    numbers_close(r, c, mods)
}

/// The reply type, whether it is null, and the length of an aggregate.
fn shape(r: &Reply) -> (u8, bool, Option<usize>) {
    let len = match &r.data {
        Some(Data::Items(items)) if is_aggregate(r.kind) => Some(items.len()),
        _ => None,
    };
    (r.kind, r.data.is_none(), len)
}

/// Elements in a canonical order; map entries stay key/value pairs.
fn sorted_elements(r: &Reply) -> Vec<&Reply> {
    let width = if r.kind == b'%' { 2 } else { 1 };
    let mut groups: Vec<&[Reply]> = items(r).chunks(width).collect();
    groups.sort_by(|a, b| {
        let key = |g: &[Reply]| g.iter().map(|x| x.raw.clone()).collect::<Vec<_>>();
        key(a).cmp(&key(b))
    });
    groups.into_iter().flatten().collect()
}

/// A number as Python's `float()` reads it from a reply payload.
fn as_float(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Python's `math.isclose(a, b, rel_tol=rel)`.
fn is_close(a: f64, b: f64, rel: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

fn numbers_close(r: &Reply, c: &Reply, mods: &Mods) -> bool {
    let (Some(a), Some(b)) = (as_float(bytes(r)), as_float(bytes(c))) else {
        return false;
    };
    if let Some(tolerance) = mods.ttl {
        if r.kind == b':' && a.min(b) >= 0.0 && (a - b).abs() <= tolerance {
            return true;
        }
    }
    mods.approx.is_some_and(|rel| is_close(a, b, rel))
}

// ---------------------------------------------------------------------------
// Rendering, like redis-cli with every type made explicit
// ---------------------------------------------------------------------------

fn escape(data: &[u8], quote: &str) -> String {
    let mut text = String::new();
    for &b in &data[..data.len().min(MAX_SHOWN)] {
        match b {
            b'\\' => text.push_str("\\\\"),
            b'"' => text.push_str("\\\""),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            32..=126 => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    if data.len() > MAX_SHOWN {
        format!("{quote}{text}...{quote} ({} bytes)", data.len())
    } else {
        format!("{quote}{text}{quote}")
    }
}

fn render(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Err(Lost(reason)) => vec![format!("({reason})")],
        Ok(r) => render_reply(r),
    }
}

fn render_reply(r: &Reply) -> Vec<String> {
    let Some(data) = &r.data else {
        return vec![match r.kind {
            b'$' => "(nil)",
            b'*' => "(nil array)",
            _ => "(null)",
        }
        .to_string()];
    };
    let value = match data {
        Data::Items(items) => return render_aggregate(r.kind, items),
        Data::Bytes(value) => value,
    };
    if r.kind == b'$' {
        return vec![escape(value, "\"")];
    }
    let tag = match r.kind {
        b'+' => "status",
        b'-' => "error",
        b':' => "integer",
        b',' => "double",
        b'#' => "boolean",
        b'(' => "big number",
        b'!' => "blob error",
        _ => "verbatim",
    };
    let quote = if r.kind == b'=' { "\"" } else { "" };
    vec![format!("({tag}) {}", escape(value, quote))]
}

fn render_aggregate(kind: u8, items: &[Reply]) -> Vec<String> {
    if items.is_empty() {
        let name = match kind {
            b'*' => "array",
            b'%' => "map",
            b'~' => "set",
            b'>' => "push",
            _ => "attribute",
        };
        return vec![format!("(empty {name})")];
    }
    let mut lines = Vec::new();
    if kind == b'%' || kind == b'|' {
        for (i, pair) in items.chunks_exact(2).enumerate() {
            let key = render_reply(&pair[0]).join(" ");
            lines.extend(nest(
                &format!("{}# {key} => ", i + 1),
                render_reply(&pair[1]),
            ));
        }
        if kind == b'|' {
            let mut out = vec!["(attribute)".to_string()];
            out.extend(lines);
            if let Some(last) = items.last() {
                out.extend(render_reply(last));
            }
            return out;
        }
        return lines;
    }
    let mark = match kind {
        b'~' => '~',
        b'>' => '>',
        _ => ')',
    };
    for (i, item) in items.iter().take(MAX_ITEMS_SHOWN).enumerate() {
        lines.extend(nest(&format!("{}{mark} ", i + 1), render_reply(item)));
    }
    if items.len() > MAX_ITEMS_SHOWN {
        lines.push(format!("... ({} more)", items.len() - MAX_ITEMS_SHOWN));
    }
    lines
}

fn nest(prefix: &str, lines: Vec<String>) -> Vec<String> {
    let pad = " ".repeat(prefix.chars().count());
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("{prefix}{line}")
            } else {
                format!("{pad}{line}")
            }
        })
        .collect()
}

/// The report of one mismatch, as respdiff prints it.
fn report(cmd: &Cmd, reference: &Outcome, candidate: &Outcome) -> String {
    let ours = render(reference);
    let theirs = render(candidate);
    let mut lines = vec![format!("{}: {}", cmd.at, cmd.display)];
    lines.extend(nest("  ref:  ", ours.clone()));
    lines.extend(nest("  cand: ", theirs.clone()));
    if let (true, Ok(r), Ok(c)) = (ours == theirs, reference, candidate) {
        // Same rendering, different bytes: a length header written
        // differently, or a difference deep inside a long value.
        let at = r
            .raw
            .iter()
            .zip(&c.raw)
            .position(|(a, b)| a != b)
            .unwrap_or(r.raw.len().min(c.raw.len()));
        let window = |raw: &[u8]| {
            let from = at.saturating_sub(16).min(raw.len());
            let to = (at + 32).min(raw.len());
            escape(&raw[from..to], "\"")
        };
        lines.push(format!("  raw replies differ at byte {at}:"));
        lines.push(format!("    ref:  {}", window(&r.raw)));
        lines.push(format!("    cand: {}", window(&c.raw)));
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------
// Connections and the runner
// ---------------------------------------------------------------------------

/// A RESP connection that reads exactly one complete reply at a time.
struct Conn {
    label: &'static str,
    addr: SocketAddr,
    timeout: Duration,
    sock: Option<TcpStream>,
    buf: Vec<u8>,
    /// Set once the connection failed; every later read returns it.
    lost: Option<Lost>,
}

impl Conn {
    fn new(label: &'static str, port: u16, timeout: Duration) -> Conn {
        Conn {
            label,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            timeout,
            sock: None,
            buf: Vec::new(),
            lost: None,
        }
    }

    fn connect(&mut self) -> Result<(), Fatal> {
        self.sock = None;
        let sock = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(|e| {
            Fatal(format!(
                "cannot connect to {} server {}: {e}",
                self.label, self.addr
            ))
        })?;
        self.sock = Some(sock);
        self.buf.clear();
        self.lost = None;
        Ok(())
    }

    fn lost_by(&self, e: std::io::Error) -> Lost {
        Lost(match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!("timed out after {}s", self.timeout.as_secs_f64())
            }
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionRefused
            | ErrorKind::BrokenPipe => "connection closed".to_string(),
            _ => format!("socket error: {e}"),
        })
    }

    fn send(&mut self, data: &[u8]) {
        if self.lost.is_some() {
            return;
        }
        let Some(sock) = self.sock.as_mut() else {
            self.lost = Some(Lost("connection closed".into()));
            return;
        };
        let sent = sock
            .set_write_timeout(Some(self.timeout))
            .and_then(|_| sock.write_all(data));
        if let Err(e) = sent {
            self.lost = Some(self.lost_by(e));
        }
    }

    /// The next complete reply, or why the connection failed.
    fn read(&mut self) -> Outcome {
        if let Some(lost) = &self.lost {
            return Err(lost.clone());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(Lost(format!("protocol error: {e}")))),
            }
            if let Err(e) = self.fill(deadline) {
                let lost = self.lost_by(e);
                return Err(self.fail(lost));
            }
        }
    }

    fn fail(&mut self, lost: Lost) -> Lost {
        self.lost = Some(lost.clone());
        lost
    }

    fn fill(&mut self, deadline: Instant) -> std::io::Result<()> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        let sock = self.sock.as_mut().ok_or(ErrorKind::UnexpectedEof)?;
        sock.set_read_timeout(Some(remaining))?;
        let mut chunk = vec![0; 1 << 16];
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Runs parsed corpus files over a reference and a candidate connection
/// and keeps score.
struct Runner {
    conns: [Conn; 2],
    passed: usize,
    failed: usize,
}

impl Runner {
    fn run_file(&mut self, name: &str, steps: &[Step]) -> Result<(), Fatal> {
        for conn in &mut self.conns {
            conn.connect()?;
        }
        self.housekeeping(&[&[b"FLUSHALL"], &[b"SELECT", b"0"]]);
        let before = (self.passed, self.failed);
        for step in steps {
            match step {
                Step::Sleep(d) => std::thread::sleep(*d),
                Step::Resp3 => self.housekeeping(&[&[b"HELLO", b"3"]]),
                Step::Batch(cmds) => {
                    if !self.run_batch(cmds)? {
                        break;
                    }
                }
            }
        }
        println!(
            "{name}: {} passed, {} failed",
            self.passed - before.0,
            self.failed - before.1
        );
        Ok(())
    }

    /// Sends commands whose replies are consumed and checked for errors,
    /// but not compared.
    fn housekeeping(&mut self, commands: &[&[&[u8]]]) {
        let owned: Vec<Vec<Vec<u8>>> = commands
            .iter()
            .map(|c| c.iter().map(|a| a.to_vec()).collect())
            .collect();
        let payload: Vec<u8> = owned.iter().flat_map(|c| encode(c)).collect();
        for conn in &mut self.conns {
            conn.send(&payload);
            for args in &owned {
                let outcome = conn.read();
                if outcome.as_ref().map_or(true, |r| is_error(r.kind)) {
                    let words: Vec<String> = args.iter().map(|a| latin1(a)).collect();
                    eprintln!(
                        "differential: warning: {} answered {} with {}",
                        conn.label,
                        words.join(" "),
                        render(&outcome).join(" ")
                    );
                }
            }
        }
    }

    /// Writes the commands in one send, then checks each reply. Returns
    /// false when the rest of the file must be skipped.
    fn run_batch(&mut self, cmds: &[Cmd]) -> Result<bool, Fatal> {
        let payload: Vec<u8> = cmds.iter().flat_map(|c| encode(&c.args)).collect();
        for conn in &mut self.conns {
            conn.send(&payload);
        }
        let mut outcomes: Vec<Vec<Option<Outcome>>> = Vec::new();
        for conn in &mut self.conns {
            outcomes.push(
                cmds.iter()
                    .map(|c| (!c.mods.noreply).then(|| conn.read()))
                    .collect(),
            );
        }
        for (i, cmd) in cmds.iter().enumerate() {
            if let (Some(r), Some(c)) = (&outcomes[0][i], &outcomes[1][i]) {
                if agree(r, c, &cmd.mods) {
                    self.passed += 1;
                } else {
                    self.failed += 1;
                    println!("{}", report(cmd, r, c));
                }
            }
        }
        match (&self.conns[0].lost, &self.conns[1].lost) {
            (None, None) => Ok(true),
            (a, b) if a != b => {
                println!("  connection state differs: skipping the rest of this file");
                Ok(false)
            }
            _ => {
                // Both sides dropped the connection alike: carry on afresh.
                for conn in &mut self.conns {
                    conn.connect()?;
                }
                Ok(true)
            }
        }
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The corpora to run: all of them, or those named in `FERROKV_CORPUS`.
fn selected_corpora() -> Vec<PathBuf> {
    let dir = corpus_dir();
    if let Ok(names) = std::env::var("FERROKV_CORPUS") {
        return names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                let file = if n.ends_with(".txt") {
                    n.to_string()
                } else {
                    format!("{n}.txt")
                };
                let path = dir.join(file);
                assert!(
                    path.is_file(),
                    "FERROKV_CORPUS names {n}, but {} does not exist",
                    path.display()
                );
                path
            })
            .collect();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

#[test]
fn corpora_match_real_redis() {
    require_redis_server();
    let files = selected_corpora();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new(""));
    let mut corpora = Vec::new();
    for path in &files {
        let name = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let text =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        match parse_corpus(&name, &text) {
            Ok(steps) => corpora.push((name, steps)),
            Err(Fatal(e)) => panic!("corpus syntax error: {e}"),
        }
    }
    let timeout = std::env::var("FERROKV_DIFF_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let redis = ServerProcess::redis(&[]);
    let candidate = match std::env::var_os("FERROKV_DIFF_SELF") {
        Some(_) => ServerProcess::redis(&[]),
        None => ServerProcess::ferrokv(&[]),
    };
    let mut runner = Runner {
        conns: [
            Conn::new("reference", redis.port, timeout),
            Conn::new("candidate", candidate.port, timeout),
        ],
        passed: 0,
        failed: 0,
    };
    for (name, steps) in &corpora {
        if let Err(Fatal(e)) = runner.run_file(name, steps) {
            panic!("differential: {e}");
        }
    }
    println!("{} passed, {} failed", runner.passed, runner.failed);
    assert_eq!(
        runner.failed,
        0,
        "{} of {} commands differ from real Redis (mismatches printed above)",
        runner.failed,
        runner.passed + runner.failed
    );
}

// ---------------------------------------------------------------------------
// Unit tests of the corpus parser and the reply reader
// ---------------------------------------------------------------------------

mod unit {
    use super::*;

    fn words(line: &str) -> Vec<Vec<u8>> {
        parse_command("t:1", line.as_bytes(), Mods::default())
            .map(|c| c.args)
            .unwrap_or_else(|Fatal(e)| panic!("{e}"))
    }

    fn b(items: &[&[u8]]) -> Vec<Vec<u8>> {
        items.iter().map(|i| i.to_vec()).collect()
    }

    #[test]
    fn quoting_follows_shlex() {
        assert_eq!(
            words("SET greeting \"hello world\""),
            b(&[b"SET", b"greeting", b"hello world"])
        );
        assert_eq!(words("ECHO #tag"), b(&[b"ECHO", b"#tag"]));
        assert_eq!(words("ECHO \"\""), b(&[b"ECHO", b""]));
        assert_eq!(words("ECHO ''"), b(&[b"ECHO", b""]));
        assert_eq!(words("ECHO a\"b c\"d"), b(&[b"ECHO", b"ab cd"]));
        assert_eq!(
            words("ECHO \"say \\\"hi\\\" \\\\ \\n\""),
            b(&[b"ECHO", b"say \"hi\" \\ \\n"])
        );
        assert_eq!(words("ECHO 'it\\s $x'"), b(&[b"ECHO", b"it\\s $x"]));
        assert_eq!(words("ECHO a\\ b"), b(&[b"ECHO", b"a b"]));
        assert_eq!(words("  ECHO\t\tx  "), b(&[b"ECHO", b"x"]));
        assert_eq!(
            words("ECHO h\u{e9}llo"),
            b(&[b"ECHO", "h\u{e9}llo".as_bytes()])
        );
    }

    #[test]
    fn hex_escapes_after_unquoting() {
        assert_eq!(
            words("SET bin \"a\\x00b\\xff\""),
            b(&[b"SET", b"bin", b"a\x00b\xff"])
        );
        // Unquoted, the backslash is a shell escape: x41 is sent.
        assert_eq!(words("ECHO \\x41"), b(&[b"ECHO", b"x41"]));
        assert_eq!(words("ECHO '\\x41'"), b(&[b"ECHO", b"A"]));
        // A decoded backslash is not rescanned.
        assert_eq!(words("ECHO \"\\x5cx41\""), b(&[b"ECHO", b"\\x41"]));
        assert_eq!(
            words("ECHO \"\\x4\" \"\\xZZ\""),
            b(&[b"ECHO", b"\\x4", b"\\xZZ"])
        );
        assert_eq!(words("ECHO \"\\x0d\\x0A\""), b(&[b"ECHO", b"\r\n"]));
    }

    #[test]
    fn quoting_errors() {
        for (line, msg) in [
            ("ECHO \"open", "t:1: No closing quotation"),
            ("ECHO 'open", "t:1: No closing quotation"),
            ("ECHO trailing\\", "t:1: No escaped character"),
        ] {
            match parse_command("t:1", line.as_bytes(), Mods::default()) {
                Err(Fatal(e)) => assert_eq!(e, msg),
                Ok(c) => panic!("{line} parsed as {:?}", c.args),
            }
        }
    }

    fn parse(text: &str) -> Vec<Step> {
        parse_corpus("c.txt", text.as_bytes()).unwrap_or_else(|Fatal(e)| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        match parse_corpus("c.txt", text.as_bytes()) {
            Err(Fatal(e)) => e,
            Ok(steps) => panic!("parsed: {steps:?}"),
        }
    }

    #[test]
    fn comments_blank_lines_and_line_numbers() {
        let steps = parse("# comment\n\n   # indented comment\r\nPING\r\n  ECHO x  \n");
        let Step::Batch(first) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(first[0].at, "c.txt:4");
        assert_eq!(first[0].args, b(&[b"PING"]));
        let Step::Batch(second) = &steps[1] else {
            panic!("{steps:?}")
        };
        assert_eq!(second[0].at, "c.txt:5");
        assert_eq!(second[0].display, "ECHO x");
        assert_eq!(steps.len(), 2);
    }

    #[test]
    fn modifiers_stack_and_apply_to_one_command() {
        let steps = parse("@sort\n@error-prefix\nSMEMBERS s\nGET k\n@ttl\nPTTL k\n@ttl\nTTL k\n@approx 0.001\nINCRBYFLOAT k 1\n@type\n@noreply\nCLIENT REPLY OFF\n");
        let mods: Vec<Mods> = steps
            .iter()
            .map(|s| match s {
                Step::Batch(cmds) => cmds[0].mods.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            mods,
            vec![
                Mods {
                    sort: true,
                    error_prefix: true,
                    ..Mods::default()
                },
                Mods::default(),
                Mods {
                    ttl: Some(50.0),
                    ..Mods::default()
                },
                Mods {
                    ttl: Some(1.0),
                    ..Mods::default()
                },
                Mods {
                    approx: Some(0.001),
                    ..Mods::default()
                },
                Mods {
                    type_only: true,
                    noreply: true,
                    ..Mods::default()
                },
            ]
        );
    }

    #[test]
    fn steps_pipeline_sleep_resp3() {
        let steps = parse("@resp3\n@sleep 20\n@pipeline 2\nPING\n@sort\nKEYS *\nPING\n");
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0], Step::Resp3);
        assert_eq!(steps[1], Step::Sleep(Duration::from_millis(20)));
        let Step::Batch(pipe) = &steps[2] else {
            panic!("{steps:?}")
        };
        assert_eq!(pipe.len(), 2);
        assert!(pipe[1].mods.sort);
        assert!(matches!(&steps[3], Step::Batch(c) if c.len() == 1));
    }

    #[test]
    fn directive_errors() {
        let cases = [
            ("@bogus\nPING\n", "c.txt:1: unknown directive @bogus"),
            ("@\nPING\n", "c.txt:1: unknown directive @"),
            ("@sort 1\nPING\n", "c.txt:1: @sort takes no argument"),
            (
                "@approx\nPING\n",
                "c.txt:1: @approx needs one numeric argument",
            ),
            (
                "@approx x\nPING\n",
                "c.txt:1: @approx needs one numeric argument",
            ),
            ("@sleep 1 2\n", "c.txt:1: @sleep needs one numeric argument"),
            (
                "@pipeline 1.5\nPING\n",
                "c.txt:1: @pipeline needs one numeric argument",
            ),
            (
                "@pipeline 0\n",
                "c.txt:1: @pipeline argument out of range: 0",
            ),
            ("@sleep -1\n", "c.txt:1: @sleep argument out of range: -1"),
            (
                "@approx inf\nPING\n",
                "c.txt:1: @approx argument out of range: inf",
            ),
            (
                "@sort\n@sleep 1\nPING\n",
                "c.txt:2: @sleep cannot stand between a directive and its command",
            ),
            (
                "@pipeline 2\nPING\n@resp3\nPING\n",
                "c.txt:3: @resp3 cannot stand between a directive and its command",
            ),
            (
                "PING\n@sort\n",
                "c.txt: file ends before the command a directive applies to",
            ),
            (
                "@pipeline 3\nPING\nPING\n",
                "c.txt: file ends before the command a directive applies to",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_err(text), want, "{text:?}");
        }
    }

    #[test]
    fn long_lines_are_shortened_for_display() {
        let line = format!("SET k {}", "v".repeat(300));
        let cmd = parse_command("t:1", line.as_bytes(), Mods::default())
            .unwrap_or_else(|Fatal(e)| panic!("{e}"));
        assert!(cmd.display.ends_with("... (306 chars)"), "{}", cmd.display);
        assert_eq!(cmd.args[2].len(), 300);
    }

    #[test]
    fn encodes_resp_arrays() {
        assert_eq!(
            encode(&b(&[b"GET", b"a\r\nb"])),
            b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n"
        );
        assert_eq!(encode(&b(&[b""])), b"*1\r\n$0\r\n\r\n");
    }

    fn one(input: &[u8]) -> Reply {
        match parse_reply(input) {
            Ok(Some((reply, used))) => {
                assert_eq!(used, input.len(), "{input:?}");
                reply
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn reads_every_resp_type() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"+OK\r\n", &["(status) OK"]),
            (b"-ERR bad\r\n", &["(error) ERR bad"]),
            (b":-5\r\n", &["(integer) -5"]),
            (b"$5\r\na\r\n\x00\xff\r\n", &["\"a\\r\\n\\x00\\xff\""]),
            (b"$0\r\n\r\n", &["\"\""]),
            (b"$-1\r\n", &["(nil)"]),
            (b"*-1\r\n", &["(nil array)"]),
            (b"_\r\n", &["(null)"]),
            (b",1.5\r\n", &["(double) 1.5"]),
            (b"#t\r\n", &["(boolean) t"]),
            (
                b"(12345678901234567890\r\n",
                &["(big number) 12345678901234567890"],
            ),
            (b"!3\r\nERR\r\n", &["(blob error) ERR"]),
            (b"=8\r\ntxt:a\"bc\r\n", &["(verbatim) \"txt:a\\\"bc\""]),
            (b"*0\r\n", &["(empty array)"]),
            (b"%0\r\n", &["(empty map)"]),
            (
                b"*2\r\n:1\r\n*2\r\n+a\r\n$1\r\nb\r\n",
                &["1) (integer) 1", "2) 1) (status) a", "   2) \"b\""],
            ),
            (b"~2\r\n$1\r\na\r\n$1\r\nb\r\n", &["1~ \"a\"", "2~ \"b\""]),
            (b">1\r\n$7\r\nmessage\r\n", &["1> \"message\""]),
            (
                b"%2\r\n$1\r\nk\r\n:1\r\n$2\r\nk2\r\n*1\r\n:2\r\n",
                &["1# \"k\" => (integer) 1", "2# \"k2\" => 1) (integer) 2"],
            ),
            (
                b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
                &["(attribute)", "1# (status) ttl => (integer) 3", "\"v\""],
            ),
        ];
        for (input, want) in cases {
            let reply = one(input);
            assert_eq!(reply.raw, *input);
            assert_eq!(render(&Ok(reply)), *want, "{input:?}");
        }
    }

    #[test]
    fn waits_for_complete_replies() {
        let full: &[u8] = b"*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n:1\r\n_\r\n";
        for end in 0..full.len() {
            assert_eq!(parse_reply(&full[..end]), Ok(None), "prefix of {end} bytes");
        }
        let mut two = full.to_vec();
        two.extend_from_slice(b"+NEXT\r\n");
        let (reply, used) = parse_reply(&two).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(items(&reply).len(), 3);
        // Lengths too large to ever arrive just wait (until the deadline).
        assert_eq!(parse_reply(b"$99999999999999999999999\r\n"), Ok(None));
        assert_eq!(parse_reply(b"*18446744073709551615\r\n"), Ok(None));
    }

    #[test]
    fn rejects_invalid_resp() {
        let cases: &[(&[u8], &str)] = &[
            (b"?x\r\n", "unexpected type byte in b'?x'"),
            (b"\r\n", "unexpected type byte in b''"),
            (b"$-2\r\n", "bad length b'-2' after '$'"),
            (b"%-1\r\n", "bad length b'-1' after '%'"),
            (b"*x\r\n", "bad length b'x' after '*'"),
            (b"$\r\n", "bad length b'' after '$'"),
            (b"$3\r\nabcde\r\n", "$3 payload not followed by CRLF"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_reply(input), Err(want.to_string()), "{input:?}");
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(parse_reply(&deep).is_err());
    }

    fn reply(input: &[u8]) -> Outcome {
        Ok(one(input))
    }

    fn mods(f: impl Fn(&mut Mods)) -> Mods {
        let mut m = Mods::default();
        f(&mut m);
        m
    }

    #[test]
    fn comparison_under_directives() {
        let none = Mods::default();
        assert!(agree(&reply(b"+OK\r\n"), &reply(b"+OK\r\n"), &none));
        assert!(!agree(
            &reply(b"$5\r\nhello\r\n"),
            &reply(b"$05\r\nhello\r\n"),
            &none
        ));
        let lost = Err(Lost("connection closed".into()));
        assert!(agree(&lost, &lost, &none));
        assert!(!agree(
            &lost,
            &Err(Lost("timed out after 5s".into())),
            &none
        ));
        assert!(!agree(&lost, &reply(b"+OK\r\n"), &none));

        let sort = mods(|m| m.sort = true);
        let ab = reply(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        let ba = reply(b"*2\r\n$1\r\nb\r\n$1\r\na\r\n");
        assert!(agree(&ab, &ba, &sort));
        assert!(!agree(&ab, &ba, &none));
        assert!(!agree(&ab, &reply(b"~2\r\n$1\r\nb\r\n$1\r\na\r\n"), &sort));
        // Nested aggregates keep their own order.
        assert!(!agree(
            &reply(b"*1\r\n*2\r\n:1\r\n:2\r\n"),
            &reply(b"*1\r\n*2\r\n:2\r\n:1\r\n"),
            &sort
        ));
        // Map pairs are sorted as pairs.
        let m1 = reply(b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n");
        assert!(agree(&m1, &reply(b"%2\r\n+b\r\n:2\r\n+a\r\n:1\r\n"), &sort));
        assert!(!agree(
            &m1,
            &reply(b"%2\r\n+b\r\n:1\r\n+a\r\n:2\r\n"),
            &sort
        ));

        let ty = mods(|m| m.type_only = true);
        assert!(agree(&reply(b"$1\r\nx\r\n"), &reply(b"$3\r\nyyy\r\n"), &ty));
        assert!(!agree(&reply(b"$1\r\nx\r\n"), &reply(b"$-1\r\n"), &ty));
        assert!(!agree(&ab, &reply(b"*1\r\n$1\r\na\r\n"), &ty));

        let prefix = mods(|m| m.error_prefix = true);
        assert!(agree(
            &reply(b"-ERR one\r\n"),
            &reply(b"-ERR two\r\n"),
            &prefix
        ));
        assert!(!agree(
            &reply(b"-ERR one\r\n"),
            &reply(b"-WRONGTYPE one\r\n"),
            &prefix
        ));
        assert!(!agree(
            &reply(b"-ERR one\r\n"),
            &reply(b"!7\r\nERR one\r\n"),
            &prefix
        ));
        assert!(!agree(
            &reply(b"-ERR one\r\n"),
            &reply(b"-ERR two\r\n"),
            &none
        ));

        let ttl = mods(|m| m.ttl = Some(1.0));
        assert!(agree(&reply(b":100\r\n"), &reply(b":99\r\n"), &ttl));
        assert!(!agree(&reply(b":100\r\n"), &reply(b":98\r\n"), &ttl));
        assert!(!agree(&reply(b":-1\r\n"), &reply(b":0\r\n"), &ttl));
        assert!(!agree(
            &reply(b"$3\r\n100\r\n"),
            &reply(b"$2\r\n99\r\n"),
            &ttl
        ));

        let approx = mods(|m| m.approx = Some(1e-9));
        assert!(agree(
            &reply(b"$19\r\n10.5000000000000001\r\n"),
            &reply(b"$4\r\n10.5\r\n"),
            &approx
        ));
        assert!(agree(
            &reply(b"*1\r\n,1.0000000001\r\n"),
            &reply(b"*1\r\n,1\r\n"),
            &approx
        ));
        assert!(!agree(&reply(b",1.1\r\n"), &reply(b",1\r\n"), &approx));
        assert!(!agree(
            &reply(b"$1\r\na\r\n"),
            &reply(b"$1\r\nb\r\n"),
            &approx
        ));
        assert!(!agree(&reply(b",inf\r\n"), &reply(b",1e308\r\n"), &approx));
    }

    #[test]
    fn report_shows_raw_difference_when_renderings_match() {
        let cmd = parse_command("f.txt:3", b"GET k", Mods::default())
            .unwrap_or_else(|Fatal(e)| panic!("{e}"));
        let text = report(
            &cmd,
            &reply(b"$5\r\nhello\r\n"),
            &reply(b"$05\r\nhello\r\n"),
        );
        assert_eq!(
            text,
            "f.txt:3: GET k\n  ref:  \"hello\"\n  cand: \"hello\"\n  raw replies differ at byte 1:\n    ref:  \"$5\\r\\nhello\\r\\n\"\n    cand: \"$05\\r\\nhello\\r\\n\""
        );
        let text = report(
            &cmd,
            &reply(b"*2\r\n:1\r\n:2\r\n"),
            &Err(Lost("connection closed".into())),
        );
        assert_eq!(
            text,
            "f.txt:3: GET k\n  ref:  1) (integer) 1\n        2) (integer) 2\n  cand: (connection closed)"
        );
    }

    #[test]
    fn long_values_are_truncated_in_renderings() {
        let mut input = b"$300\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', 300));
        input.extend_from_slice(b"\r\n");
        let shown = render(&reply(&input));
        assert_eq!(
            shown,
            vec![format!("\"{}...\" (300 bytes)", "a".repeat(200))]
        );
        let mut many = b"*60\r\n".to_vec();
        many.extend(b":1\r\n".repeat(60));
        let shown = render(&reply(&many));
        assert_eq!(shown.len(), 51);
        assert_eq!(shown[50], "... (10 more)");
    }

    #[test]
    fn corpus_files_parse() {
        for path in selected_corpora() {
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(Fatal(e)) = parse_corpus(&path.display().to_string(), &text) {
                panic!("{e}");
            }
        }
    }
}
