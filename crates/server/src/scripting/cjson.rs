//! The `cjson` library as Redis ships it (lua-cjson 2.1.0): `encode`,
//! `decode`, the configuration functions (`encode_sparse_array`,
//! `encode_max_depth`, `decode_max_depth`, `encode_number_precision`,
//! `encode_keep_buffer`, `encode_invalid_numbers`,
//! `decode_invalid_numbers`), `new`, and `null` (a NULL lightuserdata,
//! what JSON null decodes to).
//!
//! The decoder is lua-cjson's: a tokenizer over a NUL-terminated string
//! (input ends at the first zero byte), numbers read with C's `strtod`
//! (hex, `inf`, `nan` allowed unless `decode_invalid_numbers` is off),
//! errors naming the token and its 1-based character position. Numbers are
//! encoded with `%.<precision>g`.
//!
//! The configuration of the global `cjson` lives as long as the VM, and
//! SCRIPT FLUSH resets it ([`reset`]), as Redis's new VM does.

use std::sync::Arc;

use mlua::{IntoLuaMulti, LightUserData, Lua, MultiValue, Table, Value};
use parking_lot::Mutex;

use super::libs::{
    arg_error, c_int, check_integer, check_string, error, function, lua_type, Raise, Ret,
    MAX_C_STACK,
};

/// lua-cjson's settings, with its defaults.
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 refuses NaN and Inf, 1 writes them (`nan`, `inf`), 2 as `null`.
    encode_invalid_numbers: i32,
    encode_number_precision: i32,
    encode_keep_buffer: i32,
    decode_invalid_numbers: i32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            encode_number_precision: 14,
            encode_keep_buffer: 1,
            decode_invalid_numbers: 1,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

/// The configuration of the global `cjson`, kept in the VM for [`reset`].
struct GlobalConfig(Shared);

/// The global `cjson` table of this VM.
pub fn global_table(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Shared::default();
    lua.set_app_data(GlobalConfig(cfg.clone()));
    table(lua, cfg)
}

/// Back to the defaults (SCRIPT FLUSH).
pub fn reset(lua: &Lua) {
    if let Some(global) = lua.app_data_ref::<GlobalConfig>() {
        *global.0.lock() = Config::default();
    }
}

/// `json_arg_init`: at most `n` arguments.
fn arg_count(args: &MultiValue, n: usize) -> Result<(), Raise> {
    if args.len() > n {
        return Err(arg_error(n + 1, "found too many arguments"));
    }
    Ok(())
}

fn given(args: &MultiValue, narg: usize) -> Option<&Value> {
    args.get(narg - 1).filter(|v| !v.is_nil())
}

/// `json_integer_option`: sets from argument `narg` if given; returns the
/// setting. (Redis names argument #1 in the range error, whichever it is.)
fn integer_option(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Result<Value, Raise> {
    if given(args, narg).is_some() {
        // lua_Integer stored in an int: wraps.
        let value = check_integer(lua, args, narg)? as i32;
        if !(min..=max).contains(&value) {
            return Err(arg_error(
                1,
                format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = value;
    }
    Ok(Value::Number(*setting as f64))
}

/// `json_enum_option`: a boolean (when `bool_true` is set) or one of
/// `options` by name; returns the setting as a boolean or its name.
fn enum_option(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    setting: &mut i32,
    options: &[&str],
    bool_true: i32,
) -> Result<Value, Raise> {
    match given(args, narg) {
        None => {}
        Some(Value::Boolean(b)) if bool_true != 0 => *setting = *b as i32 * bool_true,
        Some(_) => {
            let name = check_string(lua, args, narg)?;
            let found = options.iter().position(|o| o.as_bytes() == name);
            *setting = match found {
                Some(i) => i as i32,
                None => {
                    let mut msg = b"invalid option '".to_vec();
                    msg.extend_from_slice(&name);
                    msg.push(b'\'');
                    return Err(arg_error(narg, msg));
                }
            };
        }
    }
    Ok(
        if bool_true != 0 && (*setting == 0 || *setting == bool_true) {
            Value::Boolean(*setting != 0)
        } else {
            Value::String(lua.create_string(options[*setting as usize])?)
        },
    )
}

const ON_OFF: &[&str] = &["off", "on"];

/// A configuration function: checks the argument count, then runs `f` on
/// the locked configuration.
fn config_fn(
    lua: &Lua,
    cfg: &Shared,
    nargs: usize,
    f: fn(&Lua, &MultiValue, &mut Config) -> Result<MultiValue, Raise>,
) -> mlua::Result<mlua::Function> {
    let cfg = cfg.clone();
    function(lua, move |lua, args| {
        arg_count(&args, nargs)?;
        f(lua, &args, &mut cfg.lock())
    })
}

fn one(lua: &Lua, v: Result<Value, Raise>) -> Ret {
    Ok(v?.into_lua_multi(lua)?)
}

/// The `cjson` table, over configuration `cfg` (`cjson.new()` makes one
/// with its own).
fn table(lua: &Lua, cfg: Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        function(lua, move |lua, args| {
            let cfg = *c.lock();
            encode(lua, &args, &cfg)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        function(lua, move |lua, args| {
            let cfg = *c.lock();
            decode(lua, &args, &cfg)
        })?,
    )?;
    t.raw_set(
        "encode_sparse_array",
        config_fn(lua, &cfg, 3, |lua, args, c| {
            let convert = enum_option(lua, args, 1, &mut c.sparse_convert, ON_OFF, 1)?;
            let ratio = integer_option(lua, args, 2, &mut c.sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, args, 3, &mut c.sparse_safe, 0, i32::MAX)?;
            Ok((convert, ratio, safe).into_lua_multi(lua)?)
        })?,
    )?;
    t.raw_set(
        "encode_max_depth",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            one(
                lua,
                integer_option(lua, args, 1, &mut c.encode_max_depth, 1, i32::MAX),
            )
        })?,
    )?;
    t.raw_set(
        "decode_max_depth",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            one(
                lua,
                integer_option(lua, args, 1, &mut c.decode_max_depth, 1, i32::MAX),
            )
        })?,
    )?;
    t.raw_set(
        "encode_number_precision",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            one(
                lua,
                integer_option(lua, args, 1, &mut c.encode_number_precision, 1, 14),
            )
        })?,
    )?;
    t.raw_set(
        "encode_keep_buffer",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            one(
                lua,
                enum_option(lua, args, 1, &mut c.encode_keep_buffer, ON_OFF, 1),
            )
        })?,
    )?;
    t.raw_set(
        "encode_invalid_numbers",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            let options = &["off", "on", "null"];
            one(
                lua,
                enum_option(lua, args, 1, &mut c.encode_invalid_numbers, options, 1),
            )
        })?,
    )?;
    t.raw_set(
        "decode_invalid_numbers",
        config_fn(lua, &cfg, 1, |lua, args, c| {
            one(
                lua,
                enum_option(lua, args, 1, &mut c.decode_invalid_numbers, ON_OFF, 1),
            )
        })?,
    )?;
    t.raw_set(
        "new",
        function(lua, |lua, _| {
            Ok(table(lua, Shared::default())?.into_lua_multi(lua)?)
        })?,
    )?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// `cjson.null`.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// C's `%.<precision>g`.
pub fn format_g(n: f64, precision: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        trim(&format!("{:.*}", (p as i32 - 1 - exp) as usize, n))
    }
}

/// lua-cjson's escapes: control characters, `"`, `\`, `/` and DEL.
fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

struct Encoder<'a> {
    cfg: &'a Config,
    out: Vec<u8>,
}

fn serialise_error(type_name: &str, reason: &str) -> Raise {
    error(format!("Cannot serialise {type_name}: {reason}"))
}

impl Encoder<'_> {
    fn number(&mut self, n: f64) -> Result<(), Raise> {
        match self.cfg.encode_invalid_numbers {
            0 if !n.is_finite() => return Err(serialise_error("number", "must not be NaN or Inf")),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if !n.is_finite() => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let text = format_g(n, self.cfg.encode_number_precision as usize);
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// `lua_array_length`: the length if `t` is an array (positive
    /// integer keys, not too sparse), else 0 or less.
    fn array_length(&mut self, t: &Table) -> Result<i32, Raise> {
        let (mut max, mut items) = (0i32, 0i32);
        for pair in t.pairs::<Value, Value>() {
            let k = match pair?.0 {
                Value::Integer(n) => n as f64,
                Value::Number(n) => n,
                _ => return Ok(-1),
            };
            if k == 0.0 || k.floor() != k || k < 1.0 {
                return Ok(-1);
            }
            if k > max as f64 {
                max = c_int(k);
            }
            items += 1;
        }
        let c = self.cfg;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if c.sparse_convert == 0 {
                return Err(serialise_error("table", "excessively sparse array"));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    /// `json_append_data` for a value that is no table.
    fn scalar(&mut self, v: &Value) -> Result<(), Raise> {
        match v {
            Value::String(s) => append_string(&mut self.out, &s.as_bytes()),
            Value::Integer(n) => self.number(*n as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            other => return Err(serialise_error(lua_type(other), "type not supported")),
        }
        Ok(())
    }

    /// Starts a value: writes it, or opens its table on `open`. `slots` is
    /// how much of its C stack Redis's encoder would use here; it limits
    /// the nesting too.
    fn start(&mut self, v: Value, open: &mut Vec<Opened>, slots: usize) -> Result<(), Raise> {
        let Value::Table(t) = v else {
            return self.scalar(&v);
        };
        let depth = open.len() as i32 + 1;
        if depth > self.cfg.encode_max_depth || slots + 3 > MAX_C_STACK {
            return Err(error(format!(
                "Cannot serialise, excessive nesting ({depth})"
            )));
        }
        let len = self.array_length(&t)?;
        if len > 0 {
            self.out.push(b'[');
            open.push(Opened::Array { t, next: 1, len });
        } else {
            self.out.push(b'{');
            let pairs = t
                .pairs::<Value, Value>()
                .collect::<mlua::Result<Vec<_>>>()?;
            open.push(Opened::Object {
                pairs: pairs.into_iter(),
                first: true,
            });
        }
        Ok(())
    }

    fn key(&mut self, k: &Value) -> Result<(), Raise> {
        match k {
            Value::Integer(n) => {
                self.out.push(b'"');
                self.number(*n as f64)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::Number(n) => {
                self.out.push(b'"');
                self.number(*n)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                append_string(&mut self.out, &s.as_bytes());
                self.out.push(b':');
            }
            other => {
                return Err(serialise_error(
                    lua_type(other),
                    "table key must be a number or string",
                ))
            }
        }
        Ok(())
    }

    /// `json_append_data` over the whole value, with an explicit stack of
    /// open tables instead of recursion.
    fn value(&mut self, v: Value) -> Result<(), Raise> {
        let mut open = Vec::new();
        // Redis's encoder holds its argument, then a value per array and
        // a key and value per object.
        let slots = |open: &Vec<Opened>| {
            1 + open
                .iter()
                .map(|o| match o {
                    Opened::Array { .. } => 1,
                    Opened::Object { .. } => 2,
                })
                .sum::<usize>()
        };
        self.start(v, &mut open, 1)?;
        while let Some(top) = open.last_mut() {
            let item = match top {
                Opened::Array { t, next, len } => {
                    if *next > *len {
                        self.out.push(b']');
                        open.pop();
                        continue;
                    }
                    if *next > 1 {
                        self.out.push(b',');
                    }
                    let item = t.raw_get::<Value>(*next)?;
                    *next += 1;
                    item
                }
                Opened::Object { pairs, first } => {
                    let Some((k, item)) = pairs.next() else {
                        self.out.push(b'}');
                        open.pop();
                        continue;
                    };
                    if !*first {
                        self.out.push(b',');
                    }
                    *first = false;
                    self.key(&k)?;
                    item
                }
            };
            let used = slots(&open);
            self.start(item, &mut open, used)?;
        }
        Ok(())
    }
}

/// A table being written.
enum Opened {
    Array {
        t: Table,
        next: i32,
        len: i32,
    },
    Object {
        pairs: std::vec::IntoIter<(Value, Value)>,
        first: bool,
    },
}

/// `cjson.encode(value)`.
fn encode(lua: &Lua, args: &MultiValue, cfg: &Config) -> Ret {
    if args.len() != 1 {
        return Err(arg_error(1, "expected 1 argument"));
    }
    let mut enc = Encoder {
        cfg,
        out: Vec::new(),
    };
    enc.value(args.front().cloned().unwrap_or(Value::Nil))?;
    Ok(lua.create_string(&enc.out)?.into_lua_multi(lua)?)
}

#[derive(Clone, Copy, PartialEq)]
enum Token {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    String,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    /// A bad token, with lua-cjson's description.
    Error(&'static str),
}

impl Token {
    fn name(self) -> &'static str {
        match self {
            Token::ObjBegin => "T_OBJ_BEGIN",
            Token::ObjEnd => "T_OBJ_END",
            Token::ArrBegin => "T_ARR_BEGIN",
            Token::ArrEnd => "T_ARR_END",
            Token::String => "T_STRING",
            Token::Number => "T_NUMBER",
            Token::Boolean => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(what) => what,
        }
    }
}

struct Parser<'a> {
    lua: &'a Lua,
    cfg: &'a Config,
    data: &'a [u8],
    ptr: usize,
    depth: i32,
    /// The token just read: where it starts, and its value.
    index: usize,
    text: Vec<u8>,
    number: f64,
    boolean: bool,
}

/// C's `strtod` (C locale) on the front of `s`: the value and the length
/// read, 0 if no number.
pub fn strtod(s: &[u8]) -> (f64, usize) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while matches!(at(i), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let sign = |v: f64| if negative { -v } else { v };
    let word = |i: usize, w: &[u8]| {
        s.get(i..i + w.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(w))
    };
    if word(i, b"inf") {
        let len = if word(i, b"infinity") { 8 } else { 3 };
        return (sign(f64::INFINITY), i + len);
    }
    if word(i, b"nan") {
        let mut end = i + 3;
        if at(end) == b'(' {
            let mut j = end + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                end = j + 1;
            }
        }
        return (sign(f64::NAN), end);
    }
    if at(i) == b'0' && (at(i + 1) | 0x20) == b'x' {
        if let Some((v, end)) = hex_float(s, i + 2) {
            return (sign(v), end);
        }
        // "0x" without digits: just the 0.
        return (sign(0.0), i + 1);
    }
    let start = i;
    let mut digits = 0;
    while at(i).is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    let mantissa_end = i;
    if (at(i) | 0x20) == b'e' {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            while at(j).is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let mut text = String::from_utf8_lossy(&s[start..mantissa_end]).into_owned();
    if text.starts_with('.') {
        text.insert(0, '0');
    }
    if text.ends_with('.') {
        text.push('0');
    }
    text.push_str(&String::from_utf8_lossy(&s[mantissa_end..i]));
    (sign(text.parse().unwrap_or(0.0)), i)
}

/// The digits of a hexadecimal float after "0x": value and end, or None
/// without digits.
fn hex_float(s: &[u8], mut i: usize) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let (mut mantissa, mut exp, mut digits, mut sticky) = (0u64, 0i64, 0, false);
    let mut add = |d: u8, fraction: bool, exp: &mut i64| {
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | d as u64;
            if fraction {
                *exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !fraction {
                *exp += 4;
            }
        }
    };
    while let Some(d) = (at(i) as char).to_digit(16) {
        add(d as u8, false, &mut exp);
        i += 1;
        digits += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while let Some(d) = (at(i) as char).to_digit(16) {
            add(d as u8, true, &mut exp);
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if (at(i) | 0x20) == b'p' {
        let mut j = i + 1;
        let negative = at(j) == b'-';
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(j).is_ascii_digit() {
                e = (e * 10 + (at(j) - b'0') as i64).min(100_000);
                j += 1;
            }
            exp += if negative { -e } else { e };
            i = j;
        }
    }
    let m = (mantissa | sticky as u64) as f64;
    let v = m * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    Some((v, i))
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    /// `json_is_invalid_number`: forms strtod takes but JSON does not.
    fn invalid_number(&self) -> bool {
        let mut p = self.ptr;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let rest = self.data.get(p..p + 3).unwrap_or_default();
        rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"nan")
    }

    fn number_token(&mut self) -> Token {
        let (v, len) = strtod(&self.data[self.ptr.min(self.data.len())..]);
        if len == 0 {
            return Token::Error("invalid number");
        }
        self.number = v;
        self.ptr += len;
        Token::Number
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, i| {
            Some(acc << 4 | (self.at(at + i) as char).to_digit(16)?)
        })
    }

    /// `json_append_unicode_escape` at `\u`: appends UTF-8, or None.
    fn unicode_escape(&mut self) -> Option<()> {
        let mut cp = self.hex4(self.ptr + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.ptr + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut buf = [0u8; 4];
        let c = char::from_u32(cp)?;
        self.text
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        self.ptr += len;
        Some(())
    }

    fn string_token(&mut self) -> Token {
        self.ptr += 1;
        self.text.clear();
        loop {
            let ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return Token::Error("unexpected end of string");
            }
            if ch == b'\\' {
                let c = match self.at(self.ptr + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => match self.unicode_escape() {
                        Some(()) => continue,
                        None => return Token::Error("invalid unicode escape code"),
                    },
                    _ => return Token::Error("invalid escape code"),
                };
                self.text.push(c);
                self.ptr += 2;
                continue;
            }
            self.text.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        Token::String
    }

    /// `json_next_token`. An error token leaves `index` at the error.
    fn next(&mut self) -> Token {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        self.index = self.ptr;
        let single = match self.at(self.ptr) {
            b'{' => Some(Token::ObjBegin),
            b'}' => Some(Token::ObjEnd),
            b'[' => Some(Token::ArrBegin),
            b']' => Some(Token::ArrEnd),
            b',' => Some(Token::Comma),
            b':' => Some(Token::Colon),
            0 => return Token::End,
            _ => None,
        };
        if let Some(t) = single {
            self.ptr += 1;
            return t;
        }
        let rest = &self.data[self.ptr..];
        let token = match self.at(self.ptr) {
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if self.cfg.decode_invalid_numbers == 0 && self.invalid_number() {
                    Token::Error("invalid number")
                } else {
                    self.number_token()
                }
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                if rest.starts_with(b"true") {
                    self.boolean = true;
                    self.ptr += 4;
                    Token::Boolean
                } else if rest.starts_with(b"false") {
                    self.boolean = false;
                    self.ptr += 5;
                    Token::Boolean
                } else if rest.starts_with(b"null") {
                    self.ptr += 4;
                    Token::Null
                } else if self.cfg.decode_invalid_numbers != 0 && self.invalid_number() {
                    self.number_token()
                } else {
                    Token::Error("invalid token")
                }
            }
            _ => Token::Error("invalid token"),
        };
        if matches!(token, Token::Error(_)) {
            self.index = self.ptr;
        }
        token
    }

    fn unexpected(&self, expected: &str, token: Token) -> Raise {
        error(format!(
            "Expected {expected} but found {} at character {}",
            token.name(),
            self.index + 1
        ))
    }

    /// `json_decode_descend`: one level deeper, within the nesting limit
    /// and Redis's C stack (`slots` more slots from `top`).
    fn descend(&mut self, top: usize, slots: usize) -> Result<(), Raise> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && top + slots <= MAX_C_STACK {
            return Ok(());
        }
        Err(error(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.ptr
        )))
    }

    /// `json_process_value` over the whole value, with an explicit stack
    /// of open tables instead of recursion.
    fn value(&mut self, first: Token) -> Result<Value, Raise> {
        let mut open: Vec<Filling> = Vec::new();
        // Redis's decoder holds its argument, then a table per array and a
        // table and key per object.
        let mut slots = 1;
        let mut token = first;
        loop {
            let mut v = match token {
                Token::String => Value::String(self.lua.create_string(&self.text)?),
                Token::Number => Value::Number(self.number),
                Token::Boolean => Value::Boolean(self.boolean),
                Token::Null => null(),
                Token::ObjBegin => {
                    self.descend(slots, 3)?;
                    let t = self.lua.create_table()?;
                    token = self.next();
                    if token == Token::ObjEnd {
                        self.depth -= 1;
                        Value::Table(t)
                    } else {
                        let key = self.object_key(token)?;
                        open.push(Filling::Object(t, key));
                        slots += 2;
                        token = self.next();
                        continue;
                    }
                }
                Token::ArrBegin => {
                    self.descend(slots, 2)?;
                    let t = self.lua.create_table()?;
                    token = self.next();
                    if token == Token::ArrEnd {
                        self.depth -= 1;
                        Value::Table(t)
                    } else {
                        open.push(Filling::Array(t, 1));
                        slots += 1;
                        continue;
                    }
                }
                other => return Err(self.unexpected("value", other)),
            };
            // Hand the value to the tables it completes.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(v);
                };
                token = self.next();
                let (end, what, table, held) = match top {
                    Filling::Array(t, i) => {
                        t.raw_set(*i, v)?;
                        *i += 1;
                        (Token::ArrEnd, "comma or array end", t.clone(), 1)
                    }
                    Filling::Object(t, key) => {
                        t.raw_set(key.clone(), v)?;
                        (Token::ObjEnd, "comma or object end", t.clone(), 2)
                    }
                };
                if token == end {
                    self.depth -= 1;
                    open.pop();
                    slots -= held;
                    v = Value::Table(table);
                    continue;
                }
                if token != Token::Comma {
                    return Err(self.unexpected(what, token));
                }
                token = self.next();
                if let Some(Filling::Object(_, key)) = open.last_mut() {
                    *key = self.object_key(token)?;
                    token = self.next();
                }
                break;
            }
        }
    }

    /// A key and its colon; the next token is the value.
    fn object_key(&mut self, token: Token) -> Result<mlua::String, Raise> {
        if token != Token::String {
            return Err(self.unexpected("object key string", token));
        }
        let key = self.lua.create_string(&self.text)?;
        let token = self.next();
        if token != Token::Colon {
            return Err(self.unexpected("colon", token));
        }
        Ok(key)
    }
}

/// A table being read.
enum Filling {
    Array(Table, i64),
    Object(Table, mlua::String),
}

/// `cjson.decode(text)`.
fn decode(lua: &Lua, args: &MultiValue, cfg: &Config) -> Ret {
    if args.len() != 1 {
        return Err(arg_error(1, "expected 1 argument"));
    }
    let data = check_string(lua, args, 1)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(error("JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut p = Parser {
        lua,
        cfg,
        data: &data,
        ptr: 0,
        depth: 0,
        index: 0,
        text: Vec::new(),
        number: 0.0,
        boolean: false,
    };
    let token = p.next();
    let v = p.value(token)?;
    let token = p.next();
    if token != Token::End {
        return Err(p.unexpected("the end", token));
    }
    Ok(v.into_lua_multi(lua)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_printf_g() {
        for (n, p, want) in [
            (0.1, 14, "0.1"),
            (1e15, 14, "1e+15"),
            (123456789012345678.0, 14, "1.2345678901235e+17"),
            (-0.0, 14, "-0"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (1e-5, 14, "1e-05"),
            (12345.0, 3, "1.23e+04"),
            (0.0001234, 3, "0.000123"),
            (123.456, 3, "123"),
            (100.0, 3, "100"),
            (1e21, 3, "1e+21"),
            (1e300, 14, "1e+300"),
        ] {
            assert_eq!(format_g(n, p), want, "{n} {p}");
        }
    }

    #[test]
    fn reads_numbers_like_strtod() {
        for (s, v, len) in [
            ("12abc", 12.0, 2),
            ("-1.5e3x", -1500.0, 6),
            ("1.5e", 1.5, 3),
            ("0x1F", 31.0, 4),
            ("0x1p4", 16.0, 5),
            ("0x", 0.0, 1),
            ("-", 0.0, 0),
            ("Infinity", f64::INFINITY, 8),
            ("-inf", f64::NEG_INFINITY, 4),
            ("1e400", f64::INFINITY, 5),
            ("-.5", -0.5, 3),
            ("+12", 12.0, 3),
        ] {
            assert_eq!(strtod(s.as_bytes()), (v, len), "{s}");
        }
        assert!(strtod(b"nan(123)").0.is_nan());
        assert_eq!(strtod(b"nan(123)").1, 8);
    }
}
