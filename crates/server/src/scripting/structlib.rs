//! The `struct` library Redis ships (Roberto Ierusalimschy's struct.c with
//! Redis's fixes): `struct.pack(fmt, ...)`, `struct.unpack(fmt, s [, pos])`
//! and `struct.size(fmt)`, with its format language, its alignment rules
//! and its error texts.
//!
//! Formats: `>` big endian, `<` little endian, `![n]` alignment (default
//! 8), `x` a zero byte, `b/B h/H l/L T i/I[n]` signed/unsigned integers of
//! 1, 2, 8, 8 and n (default 4, at most 32) bytes, `c[n]` n chars (`c0`:
//! the whole string when packing, the length read just before when
//! unpacking), `s` a zero-terminated string, `f` float, `d` double, `' '`
//! ignored. Sizes and byte orders are those of x86-64 Linux, where Redis
//! runs.

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

use super::libs::{
    arg_error, c_long, check_number, check_string, error, function, opt_integer, to_number, Raise,
    Ret, MAX_C_STACK, TWO_63,
};

/// The largest integer size (`i32`).
const MAX_INT_SIZE: i64 = 32;
/// The default of `!`: the alignment of a double.
const MAX_ALIGN: i64 = 8;

/// Byte order and alignment as the format sets them.
struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// A format string, read option by option. Like the C library, it ends at
/// the first zero byte.
struct Format<'a> {
    fmt: &'a [u8],
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8]) -> Format<'a> {
        let end = fmt.iter().position(|&b| b == 0).unwrap_or(fmt.len());
        Format { fmt: &fmt[..end] }
    }

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.fmt.split_first()?;
        self.fmt = rest;
        Some(first)
    }

    /// The number written after an option, or `default`.
    fn number(&mut self, default: i64) -> Result<i64, Raise> {
        if !self.fmt.first().is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i64 = 0;
        while let Some(&d) = self.fmt.first().filter(|d| d.is_ascii_digit()) {
            let d = (d - b'0') as i64;
            if a > i32::MAX as i64 / 10 || a * 10 > i32::MAX as i64 - d {
                return Err(error("integral size overflow"));
            }
            a = a * 10 + d;
            self.fmt = &self.fmt[1..];
        }
        Ok(a)
    }

    /// `optsize`: how many bytes option `opt` takes (0 for the others).
    fn size(&mut self, opt: u8) -> Result<usize, Raise> {
        Ok(match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'f' => 4,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'c' => self.number(1)? as usize,
            b'i' | b'I' => {
                let size = self.number(4)?;
                if size > MAX_INT_SIZE {
                    return Err(error(format!(
                        "integral size {size} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                size as usize
            }
            _ => 0,
        })
    }

    /// `controloptions`: byte order, alignment, spaces; anything else is
    /// an invalid option.
    fn control(&mut self, opt: u8, h: &mut Header) -> Result<(), Raise> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if a <= 0 || a & (a - 1) != 0 {
                    return Err(error(format!("alignment {a} is not a power of 2")));
                }
                h.align = a as usize;
            }
            _ => {
                let mut msg = b"invalid format option '".to_vec();
                msg.extend([opt, b'\'']);
                return Err(arg_error(1, msg));
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an item of `size` bytes at offset `len`.
/// Sizes that are not powers of two (`i3`) pad oddly, as in C.
fn padding(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

/// C's `(unsigned long)x` on x86-64.
fn c_ulong(x: f64) -> u64 {
    if x.is_nan() || x < TWO_63 {
        c_long(x) as u64
    } else {
        (c_long(x - TWO_63) as u64) ^ (1 << 63)
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value = if n < 0.0 {
        c_long(n) as u64
    } else {
        c_ulong(n)
    };
    let mut bytes = vec![0u8; size];
    for b in bytes.iter_mut() {
        *b = value as u8;
        value >>= 8;
    }
    if !little {
        bytes.reverse();
    }
    out.extend(bytes);
}

fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | b as u64;
    if little {
        bytes.iter().rev().for_each(|&b| push(b));
    } else {
        bytes.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    // The sign bit's shift wraps modulo 64 as x86-64's does (sizes over 8
    // bytes keep only their low 8 bytes).
    let shift = (bytes.len() as u32 * 8).wrapping_sub(1) & 63;
    let mask = u64::MAX << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn ordered<const N: usize>(bytes: [u8; N], little: bool) -> [u8; N] {
    let mut b = bytes;
    if !little {
        b.reverse();
    }
    b
}

/// `struct.pack(fmt, v1, v2, ...)`.
fn pack(lua: &Lua, mut args: MultiValue) -> Ret {
    let fmt = check_string(lua, &args, 1)?;
    // Redis pushes a nil after the arguments: a missing one reads as nil.
    args.push_back(Value::Nil);
    let mut fmt = Format::new(&fmt);
    let mut h = Header::new();
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        let pad = padding(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                put_integer(&mut out, check_number(lua, &args, arg)?, h.little, size);
                arg += 1;
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(lua, &args, arg)? as f32;
                arg += 1;
                out.extend(ordered(f.to_le_bytes(), h.little));
            }
            b'd' => {
                let d = check_number(lua, &args, arg)?;
                arg += 1;
                out.extend(ordered(d.to_le_bytes(), h.little));
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                // Redis names the argument after the string.
                let text = s
                    .get(..size)
                    .ok_or_else(|| arg_error(arg, "string too short"))?;
                out.extend_from_slice(text);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => fmt.control(opt, &mut h)?,
        }
    }
    Ok(lua.create_string(&out)?.into_lua_multi(lua)?)
}

/// `struct.unpack(fmt, s [, pos])`: the values, then the position after
/// them.
fn unpack(lua: &Lua, args: MultiValue) -> Ret {
    let fmt = check_string(lua, &args, 1)?;
    let data = check_string(lua, &args, 2)?;
    let start = opt_integer(lua, &args, 3, 1)? as u64 as usize;
    if start == 0 {
        return Err(arg_error(3, "offset must be 1 or greater"));
    }
    let mut pos = start - 1;
    let mut fmt = Format::new(&fmt);
    let mut h = Header::new();
    let mut found = MultiValue::new();
    let short = || arg_error(2, "data string too short");
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        pos = pos.wrapping_add(padding(pos, &h, opt, size));
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= data.len())
            .ok_or_else(short)?;
        if args.len() + found.len() + 2 > MAX_C_STACK {
            return Err(error("stack overflow (too many results)"));
        }
        let item = &data[pos..end];
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                found.push_back(Value::Number(get_integer(item, h.little, signed)));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(item);
                let f = f32::from_le_bytes(ordered(b, h.little));
                found.push_back(Value::Number(f as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(item);
                found.push_back(Value::Number(f64::from_le_bytes(ordered(b, h.little))));
            }
            b'c' => {
                if size == 0 {
                    // The length is the value read just before.
                    let n = to_number(lua, found.back())
                        .ok_or_else(|| error("format 'c0' needs a previous size"))?;
                    found.pop_back();
                    size = c_ulong(n) as usize;
                    if size > data.len() - pos {
                        return Err(short());
                    }
                }
                found.push_back(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let len = data[pos..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| error("unfinished string in data"))?;
                found.push_back(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => fmt.control(opt, &mut h)?,
        }
        pos += size;
    }
    found.push_back(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(found)
}

/// `struct.size(fmt)`: the bytes a format packs to, if fixed. Letters
/// that are no option count nothing here, as in Redis.
fn size(lua: &Lua, args: MultiValue) -> Ret {
    let fmt = check_string(lua, &args, 1)?;
    let mut fmt = Format::new(&fmt);
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = fmt.size(opt)?;
        pos = pos.wrapping_add(padding(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            fmt.control(opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok((pos as i64 as f64).into_lua_multi(lua)?)
}

/// The `struct` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", function(lua, pack)?)?;
    t.raw_set("unpack", function(lua, unpack)?)?;
    t.raw_set("size", function(lua, size)?)?;
    Ok(t)
}
