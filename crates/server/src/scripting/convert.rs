//! Conversions between replies and Lua values, with Redis's rules.
//!
//! A command called from a script writes an ordinary reply (RESP2, or RESP3
//! after `redis.setresp(3)`); [`push_reply`] parses those bytes into the
//! Lua value Redis's `redisProtocolToLuaType` builds. [`write_lua`] is
//! `luaReplyToRedisReply`: what a script returns becomes the reply of
//! EVAL/FCALL in the caller's protocol.
//!
//! Both work on the Lua stack through the C API: they run for every
//! `redis.call` and every script, where mlua's values (a reference slot
//! and a protected call per operation) cost more than the conversion.
//! They call no Lua function that raises, except on running out of
//! memory, and hold no Rust value with a destructor across such calls,
//! so Lua's error jump may leave them.

use std::ffi::c_int;

use ferrokv_resp::Reply;
use mlua::ffi::{self, lua_State};

/// Longest nesting a reply or a returned table is followed to; deeper
/// levels are cut, as Redis's stack checks cut them.
const MAX_DEPTH: usize = 1000;

/// Stack slots one level of either conversion uses.
const LEVEL_SLOTS: c_int = 4;

/// Pushes the Lua value for the encoded reply at the front of `buf`.
/// Errors become `{err=...}` tables and statuses `{ok=...}`; RESP2 nulls
/// become `false`; RESP3 types become Redis's wrapper tables.
///
/// # Safety
/// `state` needs [`LEVEL_SLOTS`] free slots.
pub unsafe fn push_reply(state: *mut lua_State, buf: &[u8]) {
    let mut pos = 0;
    push_value(state, buf, &mut pos, 0);
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = buf.get(*pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *pos += end + 2;
    Some(&rest[..end])
}

fn number(text: &[u8]) -> i64 {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn bulk<'a>(buf: &'a [u8], pos: &mut usize, len: i64) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    let data = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len + 2;
    Some(data)
}

unsafe fn push_bytes(state: *mut lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len());
}

/// The field Redis sets in the error tables of `redis.call` and
/// `redis.pcall`, which scripts can see: the error was counted in INFO
/// errorstats when the command failed, and is not counted again when the
/// script raises or returns it.
pub const COUNTED: &str = "ignore_error_stats_update";

/// Whether the value at `idx` is an error table (`{err=<string>}`).
///
/// # Safety
/// `idx` must be a valid absolute index of `state`, with one free slot.
pub unsafe fn is_error(state: *mut lua_State, idx: c_int) -> bool {
    if ffi::lua_type(state, idx) != ffi::LUA_TTABLE {
        return false;
    }
    let top = ffi::lua_gettop(state);
    let is = field(state, idx, top, "err") == ffi::LUA_TSTRING;
    ffi::lua_settop(state, top);
    is
}

/// Sets [`COUNTED`] in the error table on top.
///
/// # Safety
/// A table must be on top of `state`, with two free slots.
pub unsafe fn mark_counted(state: *mut lua_State) {
    push_bytes(state, COUNTED.as_bytes());
    ffi::lua_pushboolean(state, 1);
    ffi::lua_rawset(state, -3);
}

/// Pushes `{[field] = <the value on top>}` in place of the value on top.
unsafe fn wrap(state: *mut lua_State, field: &str) {
    ffi::lua_createtable(state, 0, 1);
    push_bytes(state, field.as_bytes());
    ffi::lua_pushvalue(state, -3);
    ffi::lua_rawset(state, -3);
    ffi::lua_replace(state, -2);
}

/// Pushes exactly one value; false when the reply was cut short (the
/// value then holds what was read).
unsafe fn push_value(state: *mut lua_State, buf: &[u8], pos: &mut usize, depth: usize) -> bool {
    let Some(&kind) = buf.get(*pos) else {
        ffi::lua_pushnil(state);
        return false;
    };
    *pos += 1;
    let Some(head) = line(buf, pos) else {
        ffi::lua_pushnil(state);
        return false;
    };
    match kind {
        b'+' | b'-' | b'(' => {
            push_bytes(state, head);
            wrap(
                state,
                match kind {
                    b'+' => "ok",
                    b'-' => "err",
                    _ => "big_number",
                },
            );
            if kind == b'-' {
                mark_counted(state);
            }
        }
        b':' => ffi::lua_pushnumber(state, number(head) as f64),
        b'$' => match number(head) {
            n if n < 0 => ffi::lua_pushboolean(state, 0),
            n => match bulk(buf, pos, n) {
                Some(data) => push_bytes(state, data),
                None => {
                    ffi::lua_pushnil(state);
                    return false;
                }
            },
        },
        b'*' | b'~' | b'>' | b'%' => {
            let n = number(head);
            if n < 0 {
                ffi::lua_pushboolean(state, 0);
                return true;
            }
            let map = kind == b'%';
            ffi::lua_createtable(
                state,
                if map || kind == b'~' {
                    0
                } else {
                    n.min(1024) as c_int
                },
                0,
            );
            if depth >= MAX_DEPTH || ffi::lua_checkstack(state, LEVEL_SLOTS) == 0 {
                return false;
            }
            for i in 0..n {
                let mut whole = push_value(state, buf, pos, depth + 1);
                match kind {
                    b'~' => {
                        ffi::lua_pushboolean(state, 1);
                        set_field(state);
                    }
                    b'%' => {
                        whole = whole && push_value(state, buf, pos, depth + 1);
                        set_field(state);
                    }
                    _ => ffi::lua_rawseti(state, -2, i as ffi::lua_Integer + 1),
                }
                if !whole {
                    return false;
                }
            }
            match kind {
                b'~' => wrap(state, "set"),
                b'%' => wrap(state, "map"),
                _ => {}
            }
        }
        b'_' => ffi::lua_pushnil(state),
        b'#' => ffi::lua_pushboolean(state, c_int::from(head == b"t")),
        b',' => {
            let d = crate::command::args::parse_f64(head).unwrap_or(0.0);
            ffi::lua_pushnumber(state, d);
            wrap(state, "double");
        }
        b'=' => {
            let Some(data) = bulk(buf, pos, number(head)) else {
                ffi::lua_pushnil(state);
                return false;
            };
            let (format, text) = match data.get(3) {
                Some(b':') => (&data[..3], &data[4..]),
                _ => (&b""[..], data),
            };
            ffi::lua_createtable(state, 0, 2);
            push_bytes(state, b"format");
            push_bytes(state, format);
            ffi::lua_rawset(state, -3);
            push_bytes(state, b"string");
            push_bytes(state, text);
            ffi::lua_rawset(state, -3);
            wrap(state, "verbatim_string");
        }
        _ => ffi::lua_pushnil(state),
    }
    true
}

/// Pops a key and a value into the table below them; a key Lua cannot
/// index by (nil, NaN) is dropped instead of raising.
unsafe fn set_field(state: *mut lua_State) {
    let key_ok = match ffi::lua_type(state, -2) {
        ffi::LUA_TNIL => false,
        ffi::LUA_TNUMBER => !ffi::lua_tonumber(state, -2).is_nan(),
        _ => true,
    };
    if key_ok {
        ffi::lua_rawset(state, -3);
    } else {
        ffi::lua_pop(state, 2);
    }
}

/// Writes the Lua value at stack index `idx` (absolute) as the reply of
/// EVAL/FCALL. `lua_resp3` is the protocol the script selected with
/// `redis.setresp`, which decides how booleans are sent, as in Redis.
///
/// # Safety
/// `idx` must be a valid absolute index of `state`.
pub unsafe fn write_lua(state: *mut lua_State, idx: c_int, reply: &mut Reply, lua_resp3: bool) {
    write_value(state, idx, reply, lua_resp3, 0);
}

unsafe fn bytes_at<'a>(state: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0;
    let data = ffi::lua_tolstring(state, idx, &mut len);
    if data.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(data.cast(), len)
}

unsafe fn write_value(
    state: *mut lua_State,
    idx: c_int,
    reply: &mut Reply,
    lua_resp3: bool,
    depth: usize,
) {
    match ffi::lua_type(state, idx) {
        ffi::LUA_TSTRING => reply.bulk(bytes_at(state, idx)),
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(state, idx) != 0;
            if lua_resp3 {
                reply.bool(b);
            } else if b {
                reply.int(1);
            } else {
                reply.null();
            }
        }
        ffi::LUA_TNUMBER => reply.int(truncate(ffi::lua_tonumber(state, idx))),
        ffi::LUA_TTABLE if depth < MAX_DEPTH && ffi::lua_checkstack(state, LEVEL_SLOTS) != 0 => {
            write_table(state, idx, reply, lua_resp3, depth)
        }
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

/// Pushes `t[field]` (raw), after dropping what is above `top`, and
/// returns its type.
unsafe fn field(state: *mut lua_State, idx: c_int, top: c_int, name: &str) -> c_int {
    ffi::lua_settop(state, top);
    push_bytes(state, name.as_bytes());
    ffi::lua_rawget(state, idx);
    ffi::lua_type(state, -1)
}

/// The error text an `{err=...}` table stands for: used as the whole error
/// reply, without the `ERR` code Redis adds to bare errors elsewhere.
pub fn error_text(msg: &[u8]) -> String {
    let msg = String::from_utf8_lossy(msg);
    msg.trim_matches(['\r', '\n']).to_string()
}

unsafe fn write_table(
    state: *mut lua_State,
    idx: c_int,
    reply: &mut Reply,
    lua_resp3: bool,
    depth: usize,
) {
    let top = ffi::lua_gettop(state);
    if field(state, idx, top, "err") == ffi::LUA_TSTRING {
        reply.error(&error_text(bytes_at(state, -1)));
    } else if field(state, idx, top, "ok") == ffi::LUA_TSTRING {
        let text = String::from_utf8_lossy(bytes_at(state, -1)).replace(['\r', '\n'], " ");
        reply.simple(&text);
    } else if field(state, idx, top, "double") == ffi::LUA_TNUMBER {
        reply.double(ffi::lua_tonumber(state, -1));
    } else if field(state, idx, top, "big_number") == ffi::LUA_TSTRING {
        let big = bytes_at(state, -1);
        if reply.is_resp3() {
            reply.raw(b"(");
            reply.raw(big);
            reply.raw(b"\r\n");
        } else {
            reply.bulk(big);
        }
    } else if field(state, idx, top, "map") == ffi::LUA_TTABLE {
        let head = reply.deferred(ferrokv_resp::DeferredKind::Map);
        let map = ffi::lua_gettop(state);
        let mut n = 0;
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, map) != 0 {
            let at = ffi::lua_gettop(state);
            write_value(state, at - 1, reply, lua_resp3, depth + 1);
            write_value(state, at, reply, lua_resp3, depth + 1);
            ffi::lua_settop(state, at - 1);
            n += 1;
        }
        reply.set_deferred(head, n);
    } else if field(state, idx, top, "set") == ffi::LUA_TTABLE {
        let head = reply.deferred(ferrokv_resp::DeferredKind::Set);
        let set = ffi::lua_gettop(state);
        let mut n = 0;
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, set) != 0 {
            let at = ffi::lua_gettop(state);
            write_value(state, at - 1, reply, lua_resp3, depth + 1);
            ffi::lua_settop(state, at - 1);
            n += 1;
        }
        reply.set_deferred(head, n);
    } else {
        ffi::lua_settop(state, top);
        // An array stops at the first nil, as Redis's conversion does.
        let head = reply.deferred(ferrokv_resp::DeferredKind::Array);
        let mut n = 0;
        loop {
            ffi::lua_rawgeti(state, idx, n as ffi::lua_Integer + 1);
            if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
                break;
            }
            let at = ffi::lua_gettop(state);
            write_value(state, at, reply, lua_resp3, depth + 1);
            ffi::lua_settop(state, top);
            n += 1;
        }
        reply.set_deferred(head, n);
    }
    ffi::lua_settop(state, top);
}
