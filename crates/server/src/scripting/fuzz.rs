//! The fuzzing entry point for the libraries that parse bytes a script
//! hands them: `cjson.decode` ([`super::cjson`]), `cmsgpack.unpack`
//! ([`super::libs`]) and `struct.unpack` ([`super::structlib`]). Those
//! bytes often come straight from keys and arguments, so a malformed
//! document may raise a Lua error but must never panic or crash the
//! server. The libraries are private to [`super`]; this one function is
//! all that fuzz/fuzz_targets/script_libs.rs needs of them.

use mlua::{Function, Lua, LuaOptions, StdLib, Table};

/// Calls one decoder under `pcall`, so that its Lua errors are just results.
const CALLER: &str = r#"
local rust = ...
local decode, unpack, sunpack = rust.cjson.decode, rust.cmsgpack.unpack, rust.struct.unpack
return function(which, fmt, data)
  if which == 0 then
    return pcall(decode, data)
  elseif which == 1 then
    return pcall(unpack, data)
  end
  return pcall(sunpack, fmt, data)
end
"#;

/// A VM with the libraries as the engine builds them. mlua's `pcall`
/// normally turns a Rust panic inside a callback into a Lua error; here it
/// lets the panic through, so the fuzzer sees it.
fn vm() -> mlua::Result<(Lua, Function)> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new().catch_rust_panics(false),
    )?;
    let rust: Table = super::libs::rust_table(&lua)?;
    let caller = lua.load(CALLER).set_name("=fuzz").call(rust)?;
    Ok((lua, caller))
}

thread_local! {
    static VM: Option<(Lua, Function)> = vm().ok();
}

/// Byte 0 picks the decoder (mod 3: cjson.decode, cmsgpack.unpack,
/// struct.unpack); for struct.unpack the bytes up to the first NUL are the
/// format. The rest is the data.
#[doc(hidden)]
pub fn fuzz_script_libs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let which = which % 3;
    let (fmt, data) = match (which, rest.iter().position(|&b| b == 0)) {
        (2, Some(nul)) => (&rest[..nul], &rest[nul + 1..]),
        (2, None) => (rest, &[][..]),
        _ => (&[][..], rest),
    };
    VM.with(|vm| {
        let Some((lua, caller)) = vm else {
            return;
        };
        let (fmt, data) = (lua.create_string(fmt), lua.create_string(data));
        if let (Ok(fmt), Ok(data)) = (fmt, data) {
            // pcall catches Lua errors; an Err here is a memory error.
            let _ = caller.call::<mlua::MultiValue>((which, fmt, data));
        }
    });
}
