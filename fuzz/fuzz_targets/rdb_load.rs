//! `ferrokv::persist::rdb::read_file` over arbitrary bytes (with and
//! without checksum verification): errors are fine, panics and
//! allocations larger than the input can justify are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

use ferrokv::persist::rdb::{read_file, Item, DEFAULT_ENCODINGS};

fuzz_target!(|data: &[u8]| {
    for verify in [false, true] {
        let _ = read_file(data, 16, verify, DEFAULT_ENCODINGS, |item| {
            match item {
                Item::Key(r) => std::hint::black_box(&r.key).len(),
                Item::Function(code) => std::hint::black_box(&code).len(),
            };
            Ok(())
        });
    }
});
