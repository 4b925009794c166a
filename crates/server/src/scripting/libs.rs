//! The Rust side of the libraries Redis gives scripts: `bit` (LuaBitOp),
//! `cmsgpack` (lua-cmsgpack), `cjson` ([`super::cjson`]), `struct`
//! ([`super::structlib`]), and the parts of `redis` that need Rust
//! (sha1hex, log).
//!
//! Each function returns `true` and its results, or `false` and an error
//! (see [`finish`]); [`lift`] wraps it in [`raise_from_c`], which raises
//! that error at the script's line, as a C library's `luaL_error` or
//! `luaL_argerror` would. The helpers here read arguments with the
//! `luaL_check*` rules and their error texts.

use mlua::{ffi, Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

type Out = mlua::Result<MultiValue>;

/// Lua 5.1's LUAI_MAXCSTACK: how many slots one C function may use.
/// Redis's libraries report a stack overflow past it.
pub(super) const MAX_C_STACK: usize = 8000;

/// How a library function fails, as the C libraries fail.
pub(super) enum Raise {
    /// `luaL_error`: the message gets the position of the script line.
    Error(Vec<u8>),
    /// `luaL_argerror`: "bad argument #n to 'name' (message)".
    Arg(usize, Vec<u8>),
    /// An error of the Lua core raised inside a C function (such as
    /// `lua_settable`'s "table index is nil"): no position.
    Plain(Vec<u8>),
}

impl From<mlua::Error> for Raise {
    fn from(e: mlua::Error) -> Raise {
        Raise::Plain(e.to_string().into_bytes())
    }
}

pub(super) fn error(msg: impl Into<Vec<u8>>) -> Raise {
    Raise::Error(msg.into())
}

pub(super) fn arg_error(narg: usize, msg: impl Into<Vec<u8>>) -> Raise {
    Raise::Arg(narg, msg.into())
}

pub(super) type Ret = Result<MultiValue, Raise>;

fn ok(lua: &Lua, values: impl IntoLuaMulti) -> Out {
    let mut m = values.into_lua_multi(lua)?;
    m.push_front(Value::Boolean(true));
    Ok(m)
}

/// Past this many results, [`finish`] hands them over in a table.
const PACK_RESULTS: usize = 64;

/// The protocol [`raise_from_c`] reads: `true, results...`, or `count,
/// {results}` (many results: a Rust callback's own frame has no room for
/// the ~8000 a C function may return), or `false, message` (luaL_error),
/// `false, message, narg` (luaL_argerror), `false, message, false`
/// (raised as is).
fn finish(lua: &Lua, r: Ret) -> Out {
    match r {
        Ok(values) if values.len() > PACK_RESULTS => {
            let count = values.len();
            let t = lua.create_table_with_capacity(count, 0)?;
            for (i, v) in values.into_iter().enumerate() {
                t.raw_set(i + 1, v)?;
            }
            (count as f64, t).into_lua_multi(lua)
        }
        Ok(values) => ok(lua, values),
        Err(Raise::Error(m)) => (false, lua.create_string(&m)?).into_lua_multi(lua),
        Err(Raise::Arg(n, m)) => (false, lua.create_string(&m)?, n as f64).into_lua_multi(lua),
        Err(Raise::Plain(m)) => (false, lua.create_string(&m)?, false).into_lua_multi(lua),
    }
}

/// A library function: the Rust body wrapped in [`raise_from_c`].
pub(super) fn function(
    lua: &Lua,
    f: impl Fn(&Lua, MultiValue) -> Ret + Send + 'static,
) -> mlua::Result<Function> {
    lift(
        lua,
        lua.create_function(move |lua, args| finish(lua, f(lua, args)))?,
    )
}

/// Wraps a function returning the [`finish`] protocol in [`raise_from_c`].
fn lift(lua: &Lua, f: Function) -> mlua::Result<Function> {
    // SAFETY: pushes one C closure over the function just pushed as the
    // only argument; nothing else touches the stack.
    unsafe { lua.exec_raw::<Function>(f, |state| ffi::lua_pushcclosure(state, raise_from_c, 1)) }
}

/// `luaL_typename`: the type of argument `narg` (1-based), "no value" past
/// the last one.
pub(super) fn type_name(args: &MultiValue, narg: usize) -> &'static str {
    arg(args, narg).map_or("no value", lua_type)
}

/// `lua_typename` of a value.
pub(super) fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn arg(args: &MultiValue, narg: usize) -> Option<&Value> {
    narg.checked_sub(1).and_then(|i| args.get(i))
}

/// `lua_tonumber`: numbers and numeric strings.
pub(super) fn to_number(lua: &Lua, v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        s @ Value::String(_) => lua.coerce_number(s.clone()).ok().flatten(),
        _ => None,
    }
}

/// `luaL_checknumber`.
pub(super) fn check_number(lua: &Lua, args: &MultiValue, narg: usize) -> Result<f64, Raise> {
    to_number(lua, arg(args, narg)).ok_or_else(|| {
        arg_error(
            narg,
            format!("number expected, got {}", type_name(args, narg)),
        )
    })
}

/// `luaL_checkinteger`: a number truncated like C's cast.
pub(super) fn check_integer(lua: &Lua, args: &MultiValue, narg: usize) -> Result<i64, Raise> {
    check_number(lua, args, narg).map(c_long)
}

/// `luaL_optinteger`.
pub(super) fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    default: i64,
) -> Result<i64, Raise> {
    match arg(args, narg) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => check_integer(lua, args, narg),
    }
}

/// `luaL_checklstring`: strings, and numbers in Lua's `%.14g` form.
pub(super) fn check_string(lua: &Lua, args: &MultiValue, narg: usize) -> Result<Vec<u8>, Raise> {
    let text = match arg(args, narg) {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    };
    text.ok_or_else(|| {
        arg_error(
            narg,
            format!("string expected, got {}", type_name(args, narg)),
        )
    })
}

/// 2^63, where C's conversions to 64-bit integers overflow.
pub(super) const TWO_63: f64 = (1u64 << 63) as f64;

/// C's `(long)x` on x86-64 (cvttsd2si): truncation, and the "integer
/// indefinite" value for NaN and out-of-range numbers.
pub(super) fn c_long(x: f64) -> i64 {
    if x.is_nan() || !(-TWO_63..TWO_63).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// C's `(int)x` on x86-64, likewise.
pub(super) fn c_int(x: f64) -> i32 {
    if x.is_nan() || x >= 2147483648.0 || x <= -2147483649.0 {
        i32::MIN
    } else {
        x as i32
    }
}

/// LuaBitOp's conversion: adds 2^52+2^51 and keeps the low 32 bits of the
/// double, which rounds to nearest-even and wraps modulo 2^32.
fn tobit(n: f64) -> i32 {
    (n + 6755399441055744.0).to_bits() as u32 as i32
}

fn bit_fn(lua: &Lua, name: &'static str) -> mlua::Result<Function> {
    function(lua, move |lua, args| {
        let num = |i| check_number(lua, &args, i).map(tobit);
        let r = match name {
            "tobit" => num(1)?,
            "bnot" => !num(1)?,
            "bswap" => num(1)?.swap_bytes(),
            "band" | "bor" | "bxor" => {
                let mut acc = num(1)?;
                for i in 2..=args.len() {
                    let b = num(i)?;
                    acc = match name {
                        "band" => acc & b,
                        "bor" => acc | b,
                        _ => acc ^ b,
                    };
                }
                acc
            }
            _ => {
                let (x, n) = (num(1)? as u32, (num(2)? & 31) as u32);
                (match name {
                    "lshift" => x << n,
                    "rshift" => x >> n,
                    "arshift" => ((x as i32) >> n) as u32,
                    "rol" => x.rotate_left(n),
                    _ => x.rotate_right(n),
                }) as i32
            }
        };
        Ok((r as f64).into_lua_multi(lua)?)
    })
}

/// `bit.tohex(x [, n])`: n digits, upper case when n is negative.
fn tohex(lua: &Lua, args: MultiValue) -> Ret {
    let x = check_number(lua, &args, 1).map(tobit)? as u32;
    let n = match args.len() {
        0 | 1 => 8,
        _ => check_number(lua, &args, 2).map(tobit)?,
    };
    let digits = n.unsigned_abs().min(8) as usize;
    let full = if n < 0 {
        format!("{x:08X}")
    } else {
        format!("{x:08x}")
    };
    Ok(full[8 - digits..].into_lua_multi(lua)?)
}

/// The `bit` table.
fn bit_table(lua: &Lua) -> mlua::Result<Table> {
    let bit = lua.create_table()?;
    for name in [
        "tobit", "bnot", "bswap", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol",
        "ror",
    ] {
        bit.raw_set(name, bit_fn(lua, name)?)?;
    }
    bit.raw_set("tohex", function(lua, tohex)?)?;
    Ok(bit)
}

/// lua-cmsgpack nests tables this deep, then writes nil (circular tables).
const MSGPACK_MAX_NESTING: usize = 16;

/// lua-cmsgpack's `table_is_an_array`: keys 1..n exactly (n may be 0).
fn msgpack_array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut count) = (0i64, 0i64);
    for pair in t.pairs::<Value, Value>() {
        let n = match pair?.0 {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n <= 0.0 || n.is_infinite() || c_int(n) as f64 != n {
            return Ok(None);
        }
        max = max.max(n as i64);
        count += 1;
    }
    Ok((max == count).then_some(max as usize))
}

fn msgpack_int(out: &mut Vec<u8>, n: i64) {
    match n {
        0..=127 => out.push(n as u8),
        128..=0xff => out.extend([0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend((n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend((n as u64).to_be_bytes());
        }
        -32..=-1 => out.push(n as u8),
        -128..=-33 => out.extend([0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend((n as i16).to_be_bytes());
        }
        -2147483648..=-32769 => {
            out.push(0xd2);
            out.extend((n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend(n.to_be_bytes());
        }
    }
}

/// `mp_encode_lua_type`.
fn msgpack_encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => msgpack_int(out, *n),
        Value::Number(n) => {
            // Integral numbers within int64 go as integers, the others as
            // float when that is exact, else as double.
            if !n.is_infinite() && c_long(*n) as f64 == *n {
                msgpack_int(out, c_long(*n));
            } else if (*n as f32) as f64 == *n {
                out.push(0xca);
                out.extend((*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend(n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            match b.len() {
                n @ 0..=31 => out.push(0xa0 | n as u8),
                n @ 32..=0xff => out.extend([0xd9, n as u8]),
                n @ 0x100..=0xffff => {
                    out.push(0xda);
                    out.extend((n as u16).to_be_bytes());
                }
                n => {
                    out.push(0xdb);
                    out.extend((n as u32).to_be_bytes());
                }
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MSGPACK_MAX_NESTING => match msgpack_array_len(t)? {
            Some(len) => {
                msgpack_len(out, len, 0x90, 0xdc);
                for i in 1..=len {
                    msgpack_encode(out, &t.raw_get::<Value>(i)?, level + 1)?;
                }
            }
            None => {
                let pairs = t
                    .pairs::<Value, Value>()
                    .collect::<mlua::Result<Vec<_>>>()?;
                msgpack_len(out, pairs.len(), 0x80, 0xde);
                for (k, item) in &pairs {
                    msgpack_encode(out, k, level + 1)?;
                    msgpack_encode(out, item, level + 1)?;
                }
            }
        },
        _ => out.push(0xc0),
    }
    Ok(())
}

/// An array or map header: fix form, 16-bit (`marker16`) or 32-bit
/// (`marker16 + 1`) length.
fn msgpack_len(out: &mut Vec<u8>, len: usize, fix: u8, marker16: u8) {
    if len < 16 {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(marker16);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(marker16 + 1);
        out.extend((len as u32).to_be_bytes());
    }
}

/// `cmsgpack.pack(...)`: every argument, concatenated.
fn msgpack_pack(lua: &Lua, args: MultiValue) -> Ret {
    if args.is_empty() {
        return Err(arg_error(0, "MessagePack pack needs input."));
    }
    if args.len() * 2 > MAX_C_STACK {
        return Err(arg_error(0, "Too many arguments for MessagePack pack."));
    }
    let mut out = Vec::new();
    for v in args.iter() {
        msgpack_encode(&mut out, v, 0)?;
    }
    Ok(lua.create_string(&out)?.into_lua_multi(lua)?)
}

/// Why decoding stopped.
enum Unpacked {
    Eof,
    BadFormat,
    Raise(Raise),
}

impl From<mlua::Error> for Unpacked {
    fn from(e: mlua::Error) -> Unpacked {
        Unpacked::Raise(e.into())
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Unpacked> {
    if buf.len() < n {
        return Err(Unpacked::Eof);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_n<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], Unpacked> {
    let mut a = [0u8; N];
    a.copy_from_slice(take(buf, N)?);
    Ok(a)
}

/// What one msgpack item starts.
enum Item {
    Value(Value),
    Array(usize),
    Map(usize),
}

/// Reads one item of `mp_decode_to_lua_type`. `top` is how many stack
/// slots Redis's decoder holds at this point, for its stack checks.
fn msgpack_item(lua: &Lua, buf: &mut &[u8], top: usize) -> Result<Item, Unpacked> {
    if buf.is_empty() {
        return Err(Unpacked::Eof);
    }
    if top + 1 > MAX_C_STACK {
        return Err(Unpacked::Raise(error(
            "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        )));
    }
    let num = |n: f64| Ok(Item::Value(Value::Number(n)));
    let marker = take_n::<1>(buf)?[0];
    match marker {
        0x00..=0x7f => num(marker as f64),
        0xe0..=0xff => num(marker as i8 as f64),
        0xc0 => Ok(Item::Value(Value::Nil)),
        0xc2 => Ok(Item::Value(Value::Boolean(false))),
        0xc3 => Ok(Item::Value(Value::Boolean(true))),
        0xcc => num(take_n::<1>(buf)?[0] as f64),
        0xcd => num(u16::from_be_bytes(take_n(buf)?) as f64),
        0xce => num(u32::from_be_bytes(take_n(buf)?) as f64),
        0xcf => num(u64::from_be_bytes(take_n(buf)?) as f64),
        0xd0 => num(take_n::<1>(buf)?[0] as i8 as f64),
        0xd1 => num(i16::from_be_bytes(take_n(buf)?) as f64),
        0xd2 => num(i32::from_be_bytes(take_n(buf)?) as f64),
        0xd3 => num(i64::from_be_bytes(take_n(buf)?) as f64),
        0xca => num(f32::from_be_bytes(take_n(buf)?) as f64),
        0xcb => num(f64::from_be_bytes(take_n(buf)?)),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
            let len = match marker {
                0xd9 => take_n::<1>(buf)?[0] as usize,
                0xda => u16::from_be_bytes(take_n(buf)?) as usize,
                0xdb => u32::from_be_bytes(take_n(buf)?) as usize,
                _ => (marker & 0x1f) as usize,
            };
            Ok(Item::Value(Value::String(
                lua.create_string(take(buf, len)?)?,
            )))
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let len = match marker {
                0xdc => u16::from_be_bytes(take_n(buf)?) as usize,
                0xdd => u32::from_be_bytes(take_n(buf)?) as usize,
                _ => (marker & 0x0f) as usize,
            };
            if top + 2 > MAX_C_STACK {
                return Err(Unpacked::Raise(error(
                    "stack overflow (in function mp_decode_to_lua_array)",
                )));
            }
            Ok(Item::Array(len))
        }
        0x80..=0x8f | 0xde | 0xdf => Ok(Item::Map(match marker {
            0xde => u16::from_be_bytes(take_n(buf)?) as usize,
            0xdf => u32::from_be_bytes(take_n(buf)?) as usize,
            _ => (marker & 0x0f) as usize,
        })),
        _ => Err(Unpacked::BadFormat),
    }
}

/// A table being filled while decoding.
enum Open {
    Array {
        t: Table,
        next: usize,
        len: usize,
    },
    Map {
        t: Table,
        left: usize,
        key: Option<Value>,
    },
}

/// `mp_decode_to_lua_type`: one value, with an explicit stack of open
/// tables (nesting is only limited by Redis's C stack, ~4000 levels).
fn msgpack_decode(lua: &Lua, buf: &mut &[u8], base: usize) -> Result<Value, Unpacked> {
    let mut open: Vec<Open> = Vec::new();
    let mut slots = base;
    loop {
        let mut v = match msgpack_item(lua, buf, slots)? {
            Item::Value(v) => v,
            Item::Array(0) | Item::Map(0) => Value::Table(lua.create_table()?),
            Item::Array(len) => {
                let t = lua.create_table()?;
                open.push(Open::Array { t, next: 1, len });
                slots += 2;
                continue;
            }
            Item::Map(left) => {
                let t = lua.create_table()?;
                open.push(Open::Map { t, left, key: None });
                slots += 1;
                continue;
            }
        };
        // Hand the value to the tables it completes.
        loop {
            match open.last_mut() {
                None => return Ok(v),
                Some(Open::Array { t, next, len }) => {
                    t.raw_set(*next, v)?;
                    *next += 1;
                    if *next <= *len {
                        break;
                    }
                    v = Value::Table(t.clone());
                    slots -= 2;
                }
                Some(Open::Map { t, left, key }) => match key.take() {
                    None => {
                        *key = Some(v);
                        slots += 1;
                        break;
                    }
                    Some(k) => {
                        match &k {
                            Value::Nil => return Err(plain("table index is nil")),
                            Value::Number(n) if n.is_nan() => {
                                return Err(plain("table index is NaN"))
                            }
                            _ => t.raw_set(k, v)?,
                        }
                        slots -= 1;
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        v = Value::Table(t.clone());
                        slots -= 1;
                    }
                },
            }
            open.pop();
        }
    }
}

fn plain(msg: &str) -> Unpacked {
    Unpacked::Raise(Raise::Plain(msg.as_bytes().to_vec()))
}

/// `mp_unpack_full`: every value (limit and offset 0), or up to `limit`
/// values from `offset`, preceded by the offset to go on from (-1 at the
/// end). `base` is how many arguments stay on Redis's stack.
fn msgpack_unpack(lua: &Lua, data: &[u8], limit: i64, offset: i64, base: usize) -> Ret {
    let (limit, offset) = (limit as i32, offset as i32);
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(error(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            data.len() as i32
        )));
    }
    let start = offset as usize;
    if start > data.len() {
        return Err(error(format!(
            "Start offset {offset} greater than input length {}.",
            data.len() as i32
        )));
    }
    let limit = if all { i32::MAX } else { limit };
    let mut buf = &data[start..];
    let mut values = MultiValue::new();
    while !buf.is_empty() && (values.len() as i64) < limit as i64 {
        match msgpack_decode(lua, &mut buf, base + values.len()) {
            Ok(v) => values.push_back(v),
            Err(Unpacked::Eof) => return Err(error("Missing bytes in input.")),
            Err(Unpacked::BadFormat) => return Err(error("Bad data format in input.")),
            Err(Unpacked::Raise(r)) => return Err(r),
        }
    }
    if !all {
        let next = if buf.is_empty() {
            -1.0
        } else {
            (data.len() - buf.len()) as i32 as f64
        };
        values.push_front(Value::Number(next));
    }
    Ok(values)
}

/// The `cmsgpack` table.
fn cmsgpack_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", function(lua, msgpack_pack)?)?;
    t.raw_set(
        "unpack",
        function(lua, |lua, args| {
            let data = check_string(lua, &args, 1)?;
            msgpack_unpack(lua, &data, 0, 0, args.len())
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        function(lua, |lua, args| {
            let offset = opt_integer(lua, &args, 2, 0)?;
            let data = check_string(lua, &args, 1)?;
            msgpack_unpack(lua, &data, 1, offset, 1)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        function(lua, |lua, args| {
            let limit = check_integer(lua, &args, 2)?;
            let offset = opt_integer(lua, &args, 3, 0)?;
            let data = check_string(lua, &args, 1)?;
            msgpack_unpack(lua, &data, limit, offset, 1)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

/// The C function that library functions are wrapped in: calls its
/// upvalue (a function returning `true, results...` or `false, error
/// [, how]`, see [`finish`]) and raises the error from C, as Redis's C
/// libraries do. Being a C function
/// matters: a script's `return redis.call(...)` then keeps the script's own
/// frame (Lua drops the caller's frame only for tail calls to Lua
/// functions), so errors can name the script line; and a message gets the
/// caller's position like `luaL_error` gives it.
unsafe extern "C-unwind" fn raise_from_c(state: *mut ffi::lua_State) -> std::ffi::c_int {
    let n = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, n, ffi::LUA_MULTRET);
    if ffi::lua_type(state, 1) == ffi::LUA_TNUMBER {
        let count = ffi::lua_tointeger(state, 1) as std::ffi::c_int;
        ffi::lua_remove(state, 1);
        if ffi::lua_checkstack(state, count) == 0 {
            ffi::luaL_where(state, 1);
            ffi::lua_pushstring(state, c"stack overflow (too many results)".as_ptr());
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        }
        for i in 1..=count {
            ffi::lua_rawgeti(state, 1, i as _);
        }
        return count;
    }
    if ffi::lua_toboolean(state, 1) != 0 {
        return ffi::lua_gettop(state) - 1;
    }
    ffi::lua_settop(state, 3);
    if ffi::lua_type(state, 3) == ffi::LUA_TNUMBER {
        // luaL_argerror names the function the way this call was made
        // ("?" under pcall), from this C function's own frame.
        let narg = ffi::lua_tointeger(state, 3) as std::ffi::c_int;
        let msg = ffi::lua_tostring(state, 2);
        return ffi::luaL_argerror(state, narg, msg);
    }
    let plain = ffi::lua_type(state, 3) == ffi::LUA_TBOOLEAN;
    ffi::lua_settop(state, 2);
    if !plain && ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
        ffi::luaL_where(state, 1);
        ffi::lua_insert(state, 2);
        ffi::lua_concat(state, 2);
    }
    // No Rust value with a destructor lives in this frame, so unwinding
    // it with Lua's error jump is sound.
    ffi::lua_error(state)
}

/// The table prelude.lua receives as `rust`.
pub fn rust_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "lift",
        lua.create_function(|lua, f: Function| lift(lua, f))?,
    )?;
    t.raw_set("version", crate::REDIS_VERSION)?;
    t.raw_set("version_num", 0x07000f)?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                let e = lua.create_table()?;
                e.raw_set("err", "ERR wrong number of arguments")?;
                return (false, e).into_lua_multi(lua);
            }
            let data = args
                .front()
                .and_then(|v| lua.coerce_string(v.clone()).ok().flatten())
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default();
            ok(lua, super::sha1_hex(&data))
        })?,
    )?;
    t.raw_set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            let err = |msg: &str| -> Out {
                let e = lua.create_table()?;
                e.raw_set("err", format!("ERR {msg}"))?;
                (false, e).into_lua_multi(lua)
            };
            if args.len() < 2 {
                return err("redis.log() requires two arguments or more.");
            }
            let level = match args.front() {
                Some(Value::Integer(n)) => *n as f64,
                Some(Value::Number(n)) => *n,
                _ => return err("First argument must be a number (log level)."),
            };
            if !(0.0..=3.0).contains(&level) {
                return err("Invalid debug level.");
            }
            let parts: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|v| lua.coerce_string(v.clone()).ok().flatten())
                .map(|s| s.to_string_lossy())
                .collect();
            let text = parts.join(" ");
            match level as i64 {
                0 => tracing::debug!(target: "script", "{text}"),
                1 => tracing::trace!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::warn!(target: "script", "{text}"),
            }
            ok(lua, ())
        })?,
    )?;

    t.raw_set("bit", bit_table(lua)?)?;
    t.raw_set("cjson", super::cjson::global_table(lua)?)?;
    t.raw_set("cmsgpack", cmsgpack_table(lua)?)?;
    t.raw_set("struct", super::structlib::table(lua)?)?;
    Ok(t)
}
