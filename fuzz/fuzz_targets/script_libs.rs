//! The decoders scripts feed untrusted bytes to: `cjson.decode`,
//! `cmsgpack.unpack` and `struct.unpack` (format fuzzed too), called from
//! Lua under `pcall` in a VM with the libraries as the engine builds them.
//! Lua errors are expected; panics, crashes and runaway allocations are
//! findings.
//!
//! Input layout: byte 0 picks the decoder (mod 3: cjson, cmsgpack,
//! struct); for struct the bytes up to the first NUL are the format; the
//! rest is the data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrokv::scripting::fuzz_script_libs(data);
});
