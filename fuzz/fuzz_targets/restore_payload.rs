//! RESTORE's payload decoding over arbitrary bytes. The CRC footer would
//! reject nearly every mutation before decoding, so the target appends a
//! valid footer itself and decodes the input as a payload body.
#![no_main]

use libfuzzer_sys::fuzz_target;

use ferrokv::persist::crc64;
use ferrokv::persist::rdb::{restore, DEFAULT_ENCODINGS, RDB_VERSION};

fuzz_target!(|data: &[u8]| {
    let _ = restore(data, DEFAULT_ENCODINGS);
    let mut payload = data.to_vec();
    payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::update(0, &payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let _ = restore(&payload, DEFAULT_ENCODINGS);
});
