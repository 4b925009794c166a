//! Property tests of the wire format: requests split arbitrarily across
//! reads parse to the commands that were sent, and every reply the encoder
//! writes decodes, with a small reference decoder, to what was encoded.

use ferrokv_resp::{DeferredKind, Limits, Protocol, Reply, RequestParser};
use proptest::prelude::*;

fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Feeds `input` in chunks ending at `cuts`, the way the server does: the
/// parser always sees the unconsumed bytes from the start of the current
/// request, and advances past each completed request.
fn parse_in_chunks(input: &[u8], cuts: &[usize]) -> Vec<Vec<Vec<u8>>> {
    let mut parser = RequestParser::new();
    let limits = Limits::default();
    let mut commands = Vec::new();
    let mut pos = 0;
    let ends = cuts.iter().copied().chain(std::iter::once(input.len()));
    for end in ends {
        let buf = &input[..end];
        while let Some(n) = parser.parse(&buf[pos..], &limits).expect("valid RESP") {
            let mut args: Vec<&[u8]> = Vec::new();
            parser.args(&buf[pos..], &mut args);
            if !args.is_empty() {
                commands.push(args.iter().map(|a| a.to_vec()).collect());
            }
            pos += n;
        }
    }
    assert_eq!(pos, input.len(), "bytes left unparsed");
    commands
}

fn commands() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let arg = prop::collection::vec(any::<u8>(), 0..40);
    let command = prop::collection::vec(arg, 1..6);
    prop::collection::vec(command, 1..10)
}

proptest! {
    #[test]
    fn split_requests_parse_to_the_same_commands(
        cmds in commands(),
        cut_seeds in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let input: Vec<u8> = cmds.iter().flat_map(|c| encode_command(c)).collect();
        let mut cuts: Vec<usize> = cut_seeds.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(parse_in_chunks(&input, &cuts), cmds);
    }

    #[test]
    fn byte_at_a_time_parses_to_the_same_commands(cmds in commands()) {
        let input: Vec<u8> = cmds.iter().flat_map(|c| encode_command(c)).collect();
        let cuts: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(parse_in_chunks(&input, &cuts), cmds);
    }
}

/// What a test asks the encoder to write.
#[derive(Clone, Debug)]
enum Value {
    Simple(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    NullArray,
    Bool(bool),
    Double(f64),
    Array(Vec<Value>),
    /// Written through `deferred`, the length filled in afterwards.
    DeferredArray(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,20}".prop_map(Value::Simple),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..30).prop_map(Value::Bulk),
        Just(Value::Null),
        Just(Value::NullArray),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |d| d.is_finite())
            .prop_map(Value::Double),
    ];
    leaf.prop_recursive(3, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::DeferredArray),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            prop::collection::vec(inner, 0..5).prop_map(Value::Set),
        ]
    })
}

fn write(r: &mut Reply, v: &Value) {
    match v {
        Value::Simple(s) => r.simple(s),
        Value::Int(n) => r.int(*n),
        Value::Bulk(b) => r.bulk(b),
        Value::Null => r.null(),
        Value::NullArray => r.null_array(),
        Value::Bool(b) => r.bool(*b),
        Value::Double(d) => r.double(*d),
        Value::Array(items) => {
            r.array(items.len());
            items.iter().for_each(|i| write(r, i));
        }
        Value::DeferredArray(items) => {
            let d = r.deferred(DeferredKind::Array);
            items.iter().for_each(|i| write(r, i));
            r.set_deferred(d, items.len());
        }
        Value::Map(pairs) => {
            r.map(pairs.len());
            for (k, v) in pairs {
                write(r, k);
                write(r, v);
            }
        }
        Value::Set(items) => {
            r.set(items.len());
            items.iter().for_each(|i| write(r, i));
        }
    }
}

/// A decoded reply: the type byte and its payload.
#[derive(Debug, PartialEq)]
enum Decoded {
    Line(u8, Vec<u8>),
    Bulk(u8, Vec<u8>),
    Null(u8),
    Aggregate(u8, Vec<Decoded>),
}

/// The reference decoder: the RESP2/RESP3 grammar, nothing more.
fn decode(buf: &[u8], pos: &mut usize) -> Decoded {
    let line_end = buf[*pos..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("header ends with CRLF")
        + *pos;
    let kind = buf[*pos];
    let text = buf[*pos + 1..line_end].to_vec();
    *pos = line_end + 2;
    let number = || -> i64 {
        std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse().ok())
            .expect("length")
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' => Decoded::Line(kind, text),
        b'_' => Decoded::Null(kind),
        b'$' | b'=' if number() < 0 => Decoded::Null(kind),
        b'$' | b'=' => {
            let len = number() as usize;
            let data = buf[*pos..*pos + len].to_vec();
            assert_eq!(&buf[*pos + len..*pos + len + 2], b"\r\n");
            *pos += len + 2;
            Decoded::Bulk(kind, data)
        }
        b'*' | b'~' | b'%' if number() < 0 => Decoded::Null(kind),
        b'*' | b'~' | b'%' => {
            let n = number() as usize * if kind == b'%' { 2 } else { 1 };
            Decoded::Aggregate(kind, (0..n).map(|_| decode(buf, pos)).collect())
        }
        other => panic!("unexpected type byte {other}"),
    }
}

/// Whether `d` is how `v` must look on a connection speaking `proto`.
fn matches(v: &Value, d: &Decoded, proto: Protocol) -> bool {
    let resp3 = proto == Protocol::Resp3;
    let items_match = |items: &[Value], got: &[Decoded]| {
        items.len() == got.len() && items.iter().zip(got).all(|(v, d)| matches(v, d, proto))
    };
    match (v, d) {
        (Value::Simple(s), Decoded::Line(b'+', t)) => s.as_bytes() == t,
        (Value::Int(n), Decoded::Line(b':', t)) => n.to_string().as_bytes() == t,
        (Value::Bulk(b), Decoded::Bulk(b'$', got)) => b == got,
        (Value::Null, Decoded::Null(k)) => *k == if resp3 { b'_' } else { b'$' },
        (Value::NullArray, Decoded::Null(k)) => *k == if resp3 { b'_' } else { b'*' },
        (Value::Bool(b), Decoded::Line(b'#', t)) if resp3 => t == if *b { b"t" } else { b"f" },
        (Value::Bool(b), Decoded::Line(b':', t)) if !resp3 => t == if *b { b"1" } else { b"0" },
        (Value::Double(x), Decoded::Line(b',', t)) if resp3 => same_double(*x, t),
        (Value::Double(x), Decoded::Bulk(b'$', t)) if !resp3 => same_double(*x, t),
        (Value::Array(items) | Value::DeferredArray(items), Decoded::Aggregate(b'*', got)) => {
            items_match(items, got)
        }
        (Value::Set(items), Decoded::Aggregate(k, got)) => {
            *k == if resp3 { b'~' } else { b'*' } && items_match(items, got)
        }
        (Value::Map(pairs), Decoded::Aggregate(k, got)) => {
            let flat: Vec<Value> = pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect();
            *k == if resp3 { b'%' } else { b'*' } && items_match(&flat, got)
        }
        _ => false,
    }
}

/// `%.17g` round-trips every finite double.
fn same_double(x: f64, text: &[u8]) -> bool {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|y| y == x)
}

proptest! {
    #[test]
    fn replies_round_trip_through_a_reference_decoder(
        values in prop::collection::vec(value(), 1..6),
        resp3 in any::<bool>(),
    ) {
        let proto = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
        let mut reply = Reply::new(proto);
        for v in &values {
            write(&mut reply, v);
        }
        let mut pos = 0;
        for v in &values {
            let d = decode(&reply.buf, &mut pos);
            prop_assert!(matches(v, &d, proto), "{:?} encoded as {:?}", v, d);
        }
        prop_assert_eq!(pos, reply.buf.len());
    }
}
