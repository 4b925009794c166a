//! Property test of Redis glob matching against a plain reference model:
//! a recursive matcher over patterns of literals, `?`, `*` and simple
//! `[...]` classes (single characters and ranges, optionally negated).

use ferrokv::glob::matches;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Token {
    Literal(u8),
    Any,
    Star,
    /// Ranges are written as generated; Redis accepts them reversed.
    Class {
        negated: bool,
        items: Vec<(u8, u8)>,
    },
}

const ALPHABET: &[u8] = b"abcxyzAB";

fn byte() -> impl Strategy<Value = u8> {
    prop::sample::select(ALPHABET)
}

fn token() -> impl Strategy<Value = Token> {
    let item = prop_oneof![byte().prop_map(|c| (c, c)), (byte(), byte())];
    prop_oneof![
        3 => byte().prop_map(Token::Literal),
        1 => Just(Token::Any),
        1 => Just(Token::Star),
        1 => (any::<bool>(), prop::collection::vec(item, 1..4))
            .prop_map(|(negated, items)| Token::Class { negated, items }),
    ]
}

fn render(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            Token::Literal(c) => out.push(*c),
            Token::Any => out.push(b'?'),
            Token::Star => out.push(b'*'),
            Token::Class { negated, items } => {
                out.push(b'[');
                if *negated {
                    out.push(b'^');
                }
                for &(lo, hi) in items {
                    out.push(lo);
                    if lo != hi {
                        out.extend_from_slice(&[b'-', hi]);
                    }
                }
                out.push(b']');
            }
        }
    }
    out
}

fn in_class(items: &[(u8, u8)], c: u8) -> bool {
    items.iter().any(|&(a, b)| a.min(b) <= c && c <= a.max(b))
}

/// Redis's one departure from textbook globbing: an empty string matches
/// only the empty pattern, so `**` does not match "" (KEYS `*` special-cases
/// the lone star before matching).
fn reference(p: &[Token], s: &[u8]) -> bool {
    if s.is_empty() {
        return p.is_empty();
    }
    textbook(p, s)
}

fn textbook(p: &[Token], s: &[u8]) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Star => (0..=s.len()).any(|i| textbook(rest, &s[i..])),
        Token::Any => !s.is_empty() && textbook(rest, &s[1..]),
        Token::Literal(c) => s.first() == Some(c) && textbook(rest, &s[1..]),
        Token::Class { negated, items } => match s.split_first() {
            Some((&c, tail)) => in_class(items, c) != *negated && textbook(rest, tail),
            None => false,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn glob_agrees_with_reference(
        tokens in prop::collection::vec(token(), 0..8),
        s in prop::collection::vec(byte(), 0..12),
    ) {
        let pattern = render(&tokens);
        prop_assert_eq!(
            matches(&pattern, &s, false),
            reference(&tokens, &s),
            "pattern {:?} string {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&s)
        );
    }

    /// Without classes, case-insensitive matching is matching lowercased.
    #[test]
    fn nocase_agrees_with_lowercased_reference(
        tokens in prop::collection::vec(token(), 0..8)
            .prop_filter("no classes", |t| !t.iter().any(|t| matches!(t, Token::Class { .. }))),
        s in prop::collection::vec(byte(), 0..12),
    ) {
        let pattern = render(&tokens);
        let lower: Vec<Token> = tokens
            .iter()
            .map(|t| match t {
                Token::Literal(c) => Token::Literal(c.to_ascii_lowercase()),
                other => other.clone(),
            })
            .collect();
        prop_assert_eq!(
            matches(&pattern, &s, true),
            reference(&lower, &s.to_ascii_lowercase())
        );
    }
}
