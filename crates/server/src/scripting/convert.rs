//! Conversions between replies and Lua values, with Redis's rules.
//!
//! A command called from a script writes an ordinary reply (RESP2, or RESP3
//! after `redis.setresp(3)`); [`reply_to_lua`] parses those bytes into the
//! Lua value Redis's `redisProtocolToLuaType` builds. [`lua_to_reply`] is
//! `luaReplyToRedisReply`: what a script returns becomes the reply of
//! EVAL/FCALL in the caller's protocol.

use ferrokv_resp::Reply;
use mlua::{Lua, Table, Value};

/// Longest nesting a reply or a returned table is followed to; deeper
/// levels are cut, as Redis's stack checks cut them.
const MAX_DEPTH: usize = 1000;

/// Parses one encoded reply from the front of `buf` into a Lua value.
/// Errors become `{err=...}` tables and statuses `{ok=...}`; RESP2 nulls
/// become `false`; RESP3 types become Redis's wrapper tables.
pub fn reply_to_lua(lua: &Lua, buf: &[u8]) -> mlua::Result<Value> {
    let mut pos = 0;
    parse(lua, buf, &mut pos, 0)
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> mlua::Result<&'a [u8]> {
    let rest = buf.get(*pos..).unwrap_or_default();
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
    *pos += end + 2;
    Ok(&rest[..end])
}

fn number(text: &[u8]) -> i64 {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn bulk<'a>(buf: &'a [u8], pos: &mut usize, len: i64) -> mlua::Result<&'a [u8]> {
    let len = usize::try_from(len).map_err(|_| mlua::Error::runtime("bad length"))?;
    let data = buf
        .get(*pos..*pos + len)
        .ok_or_else(|| mlua::Error::runtime("truncated reply"))?;
    *pos += len + 2;
    Ok(data)
}

fn single_field(lua: &Lua, field: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, value)?;
    Ok(Value::Table(t))
}

fn parse(lua: &Lua, buf: &[u8], pos: &mut usize, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("reply nested too deeply"));
    }
    let kind = *buf
        .get(*pos)
        .ok_or_else(|| mlua::Error::runtime("empty reply"))?;
    *pos += 1;
    let head = line(buf, pos)?;
    Ok(match kind {
        b'+' => single_field(lua, "ok", lua.create_string(head)?)?,
        b'-' => single_field(lua, "err", lua.create_string(head)?)?,
        b':' => Value::Number(number(head) as f64),
        b'$' => match number(head) {
            n if n < 0 => Value::Boolean(false),
            n => Value::String(lua.create_string(bulk(buf, pos, n)?)?),
        },
        b'*' | b'~' | b'>' => {
            let n = number(head);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table()?;
            for i in 0..n {
                let v = parse(lua, buf, pos, depth + 1)?;
                if kind == b'~' {
                    t.raw_set(v, true)?;
                } else {
                    t.raw_set(i + 1, v)?;
                }
            }
            match kind {
                b'~' => single_field(lua, "set", t)?,
                _ => Value::Table(t),
            }
        }
        b'%' => {
            let t = lua.create_table()?;
            for _ in 0..number(head) {
                let k = parse(lua, buf, pos, depth + 1)?;
                let v = parse(lua, buf, pos, depth + 1)?;
                t.raw_set(k, v)?;
            }
            single_field(lua, "map", t)?
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(head == b"t"),
        b',' => {
            let d = crate::command::args::parse_f64(head).unwrap_or(0.0);
            single_field(lua, "double", d)?
        }
        b'(' => single_field(lua, "big_number", lua.create_string(head)?)?,
        b'=' => {
            let data = bulk(buf, pos, number(head))?;
            let (format, text) = match data.get(3) {
                Some(b':') => (&data[..3], &data[4..]),
                _ => (&b""[..], data),
            };
            let t = lua.create_table()?;
            t.raw_set("format", lua.create_string(format)?)?;
            t.raw_set("string", lua.create_string(text)?)?;
            single_field(lua, "verbatim_string", t)?
        }
        _ => Value::Nil,
    })
}

/// Writes what a script returned as the reply of EVAL/FCALL. `lua_resp3`
/// is the protocol the script selected with `redis.setresp`, which decides
/// how booleans are sent, as in Redis.
pub fn lua_to_reply(lua: &Lua, v: &Value, reply: &mut Reply, lua_resp3: bool) {
    write_value(lua, v, reply, lua_resp3, 0);
}

fn write_value(lua: &Lua, v: &Value, reply: &mut Reply, lua_resp3: bool, depth: usize) {
    match v {
        Value::String(s) => reply.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if lua_resp3 {
                reply.bool(*b);
            } else if *b {
                reply.int(1);
            } else {
                reply.null();
            }
        }
        Value::Integer(n) => reply.int(*n),
        Value::Number(n) => reply.int(truncate(*n)),
        Value::Table(t) if depth < MAX_DEPTH => write_table(lua, t, reply, lua_resp3, depth),
        _ => reply.null(),
    }
}

/// Lua numbers become integers by truncation, as `(long long)` does.
fn truncate(n: f64) -> i64 {
    if n.is_nan() {
        i64::MIN
    } else {
        n as i64
    }
}

fn string_field(t: &Table, name: &str) -> Option<Vec<u8>> {
    match t.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The error text an `{err=...}` table stands for: used as the whole error
/// reply, without the `ERR` code Redis adds to bare errors elsewhere.
pub fn error_text(msg: &[u8]) -> String {
    let msg = String::from_utf8_lossy(msg);
    msg.trim_matches(['\r', '\n']).to_string()
}

fn write_table(lua: &Lua, t: &Table, reply: &mut Reply, lua_resp3: bool, depth: usize) {
    if let Some(err) = string_field(t, "err") {
        reply.error(&error_text(&err));
        return;
    }
    if let Some(ok) = string_field(t, "ok") {
        let text = String::from_utf8_lossy(&ok)
            .replace(['\r', '\n'], " ")
            .to_string();
        reply.simple(&text);
        return;
    }
    if let Ok(Value::Number(d)) = t.raw_get::<Value>("double") {
        reply.double(d);
        return;
    }
    if let Ok(Value::Integer(d)) = t.raw_get::<Value>("double") {
        reply.double(d as f64);
        return;
    }
    if let Some(big) = string_field(t, "big_number") {
        if reply.is_resp3() {
            reply.raw(b"(");
            reply.raw(&big);
            reply.raw(b"\r\n");
        } else {
            reply.bulk(&big);
        }
        return;
    }
    if let Ok(Value::Table(map)) = t.raw_get::<Value>("map") {
        let head = reply.deferred(ferrokv_resp::DeferredKind::Map);
        let mut n = 0;
        for (k, v) in map.pairs::<Value, Value>().flatten() {
            write_value(lua, &k, reply, lua_resp3, depth + 1);
            write_value(lua, &v, reply, lua_resp3, depth + 1);
            n += 1;
        }
        reply.set_deferred(head, n);
        return;
    }
    if let Ok(Value::Table(set)) = t.raw_get::<Value>("set") {
        let head = reply.deferred(ferrokv_resp::DeferredKind::Set);
        let mut n = 0;
        for (k, _) in set.pairs::<Value, Value>().flatten() {
            write_value(lua, &k, reply, lua_resp3, depth + 1);
            n += 1;
        }
        reply.set_deferred(head, n);
        return;
    }
    // An array stops at the first nil, as Redis's conversion does.
    let head = reply.deferred(ferrokv_resp::DeferredKind::Array);
    let mut n = 0;
    loop {
        match t.raw_get::<Value>(n + 1) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => write_value(lua, &v, reply, lua_resp3, depth + 1),
        }
        n += 1;
    }
    reply.set_deferred(head, n);
}
