//! The Rust side of the libraries Redis gives scripts: `bit` (LuaBitOp),
//! `cjson` (encode/decode), `cmsgpack` (pack/unpack), and the parts of
//! `redis` that need Rust (sha1hex, log).
//!
//! Each function returns `true` and its results, or `false` and an error
//! (a message, or an `{err=...}` table); prelude.lua wraps it with
//! [`raise_from_c`] (`rust.lift`), which raises that error at the script's
//! line, as a C library's `luaL_error` would.

use mlua::{ffi, IntoLuaMulti, Lua, MultiValue, Table, Value};

type Out = mlua::Result<MultiValue>;

fn ok(lua: &Lua, values: impl mlua::IntoLuaMulti) -> Out {
    let mut m = values.into_lua_multi(lua)?;
    m.push_front(Value::Boolean(true));
    Ok(m)
}

fn fail(lua: &Lua, msg: String) -> Out {
    (false, msg).into_lua_multi(lua)
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

fn check_number(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    let v = args.get(i);
    let n = match v {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(Value::String(_)) => lua
            .coerce_number(v.cloned().unwrap_or(Value::Nil))
            .ok()
            .flatten(),
        _ => None,
    };
    n.ok_or_else(|| {
        format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            type_name(v)
        )
    })
}

/// LuaBitOp's conversion: round to nearest, then wrap to 32 bits.
fn tobit(n: f64) -> i32 {
    let r = n.round_ties_even().rem_euclid(4294967296.0);
    r as u64 as u32 as i32
}

fn bit_fn(lua: &Lua, name: &'static str) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let num = |i| check_number(lua, &args, i, name).map(tobit);
        let r: Result<i32, String> = (|| {
            Ok(match name {
                "tobit" => num(0)?,
                "bnot" => !num(0)?,
                "bswap" => num(0)?.swap_bytes(),
                "band" | "bor" | "bxor" => {
                    let mut acc = num(0)?;
                    for i in 1..args.len() {
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
                    let (x, n) = (num(0)? as u32, (num(1)? & 31) as u32);
                    (match name {
                        "lshift" => x << n,
                        "rshift" => x >> n,
                        "arshift" => ((x as i32) >> n) as u32,
                        "rol" => x.rotate_left(n),
                        _ => x.rotate_right(n),
                    }) as i32
                }
            })
        })();
        match r {
            Ok(v) => ok(lua, v as f64),
            Err(e) => fail(lua, e),
        }
    })
}

fn tohex(lua: &Lua, args: MultiValue) -> Out {
    let x = match check_number(lua, &args, 0, "tohex") {
        Ok(x) => tobit(x) as u32,
        Err(e) => return fail(lua, e),
    };
    let n = match args.get(1) {
        None | Some(Value::Nil) => 8,
        Some(_) => match check_number(lua, &args, 1, "tohex") {
            Ok(n) => tobit(n),
            Err(e) => return fail(lua, e),
        },
    };
    let upper = n < 0;
    let digits = n.unsigned_abs().min(8) as usize;
    let full = if upper {
        format!("{x:08X}")
    } else {
        format!("{x:08x}")
    };
    ok(lua, full[8 - digits..].to_string())
}

/// lua-cjson's string escaping (it escapes `/` too).
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
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

fn number_text(lua: &Lua, n: f64) -> mlua::Result<Vec<u8>> {
    Ok(lua
        .coerce_string(Value::Number(n))?
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default())
}

/// The length of `t` if it is an array the way lua-cjson decides (positive
/// integer keys only, not too sparse), else None.
fn array_len(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.fract() != 0.0 {
            return Ok(None);
        }
        max = max.max(n as usize);
        items += 1;
    }
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

fn json_encode(lua: &Lua, out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    if depth > 1000 {
        return Err("Cannot serialise, excessive nesting (1001)".into());
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Number(n) => {
            if n.is_nan() || n.is_infinite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            out.extend(number_text(lua, *n).map_err(|e| e.to_string())?);
        }
        Value::String(s) => json_string(out, &s.as_bytes()),
        Value::Table(t) => match array_len(t)? {
            Some(len) if len > 0 => {
                out.push(b'[');
                for i in 1..=len {
                    if i > 1 {
                        out.push(b',');
                    }
                    let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    json_encode(lua, out, &item, depth + 1)?;
                }
                out.push(b']');
            }
            _ => {
                out.push(b'{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, item) = pair.map_err(|e| e.to_string())?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(out, &s.as_bytes()),
                        Value::Integer(_) | Value::Number(_) => {
                            let n = lua.coerce_string(k.clone()).map_err(|e| e.to_string())?;
                            json_string(out, &n.map(|s| s.as_bytes().to_vec()).unwrap_or_default());
                        }
                        _ => {
                            return Err(
                                "Cannot serialise table: table key must be a number or string"
                                    .into(),
                            )
                        }
                    }
                    out.push(b':');
                    json_encode(lua, out, &item, depth + 1)?;
                }
                out.push(b'}');
            }
        },
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ))
        }
    }
    Ok(())
}

fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table()?;
            for (k, item) in map {
                t.raw_set(k.as_str(), json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

fn msgpack_encode(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    use rmp::encode;
    let e = |r: Result<(), _>| r.map_err(|e: rmp::encode::ValueWriteError| e.to_string());
    match v {
        Value::Boolean(b) => encode::write_bool(out, *b).map_err(|e| e.to_string())?,
        Value::Integer(n) => e(encode::write_sint(out, *n).map(|_| ()))?,
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.2e18 {
                e(encode::write_sint(out, *n as i64).map(|_| ()))?
            } else if (*n as f32) as f64 == *n {
                e(encode::write_f32(out, *n as f32))?
            } else {
                e(encode::write_f64(out, *n))?
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            e(encode::write_str_len(out, b.len() as u32).map(|_| ()))?;
            out.extend_from_slice(&b);
        }
        Value::Table(t) if depth < 16 => match array_len(t).ok().flatten() {
            Some(len) if len > 0 => {
                e(encode::write_array_len(out, len as u32).map(|_| ()))?;
                for i in 1..=len {
                    let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    msgpack_encode(out, &item, depth + 1)?;
                }
            }
            _ => {
                let pairs: Vec<(Value, Value)> = t.pairs().flatten().collect();
                e(encode::write_map_len(out, pairs.len() as u32).map(|_| ()))?;
                for (k, item) in &pairs {
                    msgpack_encode(out, k, depth + 1)?;
                    msgpack_encode(out, item, depth + 1)?;
                }
            }
        },
        _ => encode::write_nil(out).map_err(|e| e.to_string())?,
    }
    Ok(())
}

fn take(lua: &Lua, buf: &mut &[u8], n: usize) -> Result<Value, String> {
    if buf.len() < n {
        return Err("Missing bytes in input.".into());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    lua.create_string(head)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

fn msgpack_decode(lua: &Lua, buf: &mut &[u8], depth: usize) -> Result<Value, String> {
    use rmp::decode::{self, RmpRead};
    use rmp::Marker;
    let bad = || "Missing bytes in input.".to_string();
    if depth > 1000 {
        return Err(bad());
    }
    let marker = decode::read_marker(buf).map_err(|_| bad())?;
    Ok(match marker {
        Marker::Null => Value::Nil,
        Marker::True => Value::Boolean(true),
        Marker::False => Value::Boolean(false),
        Marker::FixPos(n) => Value::Number(n as f64),
        Marker::FixNeg(n) => Value::Number(n as f64),
        Marker::U8 => Value::Number(buf.read_data_u8().map_err(|_| bad())? as f64),
        Marker::U16 => Value::Number(buf.read_data_u16().map_err(|_| bad())? as f64),
        Marker::U32 => Value::Number(buf.read_data_u32().map_err(|_| bad())? as f64),
        Marker::U64 => Value::Number(buf.read_data_u64().map_err(|_| bad())? as f64),
        Marker::I8 => Value::Number(buf.read_data_i8().map_err(|_| bad())? as f64),
        Marker::I16 => Value::Number(buf.read_data_i16().map_err(|_| bad())? as f64),
        Marker::I32 => Value::Number(buf.read_data_i32().map_err(|_| bad())? as f64),
        Marker::I64 => Value::Number(buf.read_data_i64().map_err(|_| bad())? as f64),
        Marker::F32 => Value::Number(buf.read_data_f32().map_err(|_| bad())? as f64),
        Marker::F64 => Value::Number(buf.read_data_f64().map_err(|_| bad())?),
        Marker::FixStr(n) => take(lua, buf, n as usize)?,
        Marker::Str8 | Marker::Bin8 => {
            let n = buf.read_data_u8().map_err(|_| bad())? as usize;
            take(lua, buf, n)?
        }
        Marker::Str16 | Marker::Bin16 => {
            let n = buf.read_data_u16().map_err(|_| bad())? as usize;
            take(lua, buf, n)?
        }
        Marker::Str32 | Marker::Bin32 => {
            let n = buf.read_data_u32().map_err(|_| bad())? as usize;
            take(lua, buf, n)?
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let n = match marker {
                Marker::FixArray(n) => n as usize,
                Marker::Array16 => buf.read_data_u16().map_err(|_| bad())? as usize,
                _ => buf.read_data_u32().map_err(|_| bad())? as usize,
            };
            let t = lua.create_table().map_err(|e| e.to_string())?;
            for i in 0..n {
                let v = msgpack_decode(lua, buf, depth + 1)?;
                t.raw_set(i + 1, v).map_err(|e| e.to_string())?;
            }
            Value::Table(t)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let n = match marker {
                Marker::FixMap(n) => n as usize,
                Marker::Map16 => buf.read_data_u16().map_err(|_| bad())? as usize,
                _ => buf.read_data_u32().map_err(|_| bad())? as usize,
            };
            let t = lua.create_table().map_err(|e| e.to_string())?;
            for _ in 0..n {
                let k = msgpack_decode(lua, buf, depth + 1)?;
                let v = msgpack_decode(lua, buf, depth + 1)?;
                if k != Value::Nil {
                    t.raw_set(k, v).map_err(|e| e.to_string())?;
                }
            }
            Value::Table(t)
        }
        _ => return Err("Bad data format in input.".into()),
    })
}

/// The C function that library functions are wrapped in: calls its
/// upvalue (a function returning `true, results...` or `false, error`) and
/// raises the error from C, as Redis's C libraries do. Being a C function
/// matters: a script's `return redis.call(...)` then keeps the script's own
/// frame (Lua drops the caller's frame only for tail calls to Lua
/// functions), so errors can name the script line; and a message gets the
/// caller's position like `luaL_error` gives it.
unsafe extern "C-unwind" fn raise_from_c(state: *mut ffi::lua_State) -> std::ffi::c_int {
    let n = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, n, ffi::LUA_MULTRET);
    if ffi::lua_toboolean(state, 1) != 0 {
        return ffi::lua_gettop(state) - 1;
    }
    ffi::lua_settop(state, 2);
    if ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
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
        lua.create_function(|lua, f: mlua::Function| {
            // SAFETY: pushes one C closure over the function just pushed
            // as the only argument; nothing else touches the stack.
            unsafe {
                lua.exec_raw::<mlua::Function>(f, |state| {
                    ffi::lua_pushcclosure(state, raise_from_c, 1)
                })
            }
        })?,
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

    let bit = lua.create_table()?;
    for name in [
        "tobit", "bnot", "bswap", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol",
        "ror",
    ] {
        bit.raw_set(name, bit_fn(lua, name)?)?;
    }
    bit.raw_set("tohex", lua.create_function(tohex)?)?;
    t.raw_set("bit", bit)?;

    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return fail(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)".into(),
                );
            }
            let mut out = Vec::new();
            match json_encode(lua, &mut out, args.front().unwrap_or(&Value::Nil), 0) {
                Ok(()) => ok(lua, lua.create_string(&out)?),
                Err(e) => fail(lua, e),
            }
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, args: MultiValue| {
            let text = match args.front() {
                Some(Value::String(s)) if args.len() == 1 => s.as_bytes().to_vec(),
                _ => {
                    return fail(
                        lua,
                        "bad argument #1 to 'decode' (expected 1 argument)".into(),
                    )
                }
            };
            match serde_json::from_slice::<serde_json::Value>(&text) {
                Ok(v) => ok(lua, json_to_lua(lua, &v)?),
                Err(e) => fail(lua, format!("Expected value but found invalid token ({e})")),
            }
        })?,
    )?;
    t.raw_set("cjson", cjson)?;

    let cmsgpack = lua.create_table()?;
    cmsgpack.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return fail(lua, "MessagePack pack needs input.".into());
            }
            let mut out = Vec::new();
            for v in args.iter() {
                if let Err(e) = msgpack_encode(&mut out, v, 0) {
                    return fail(lua, e);
                }
            }
            ok(lua, lua.create_string(&out)?)
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            let data = match args.front() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                _ => return fail(lua, "bad argument #1 to 'unpack' (string expected)".into()),
            };
            let mut buf = data.as_slice();
            let mut values = Vec::new();
            while !buf.is_empty() {
                match msgpack_decode(lua, &mut buf, 0) {
                    Ok(v) => values.push(v),
                    Err(e) => return fail(lua, e),
                }
            }
            ok(lua, MultiValue::from_iter(values))
        })?,
    )?;
    t.raw_set("cmsgpack", cmsgpack)?;
    Ok(t)
}
