//! CRC-64/Jones as Redis computes it (src/crc64.c): reflected input and
//! output, polynomial 0xad93d23594c935a9, initial value 0, no final xor.
//! It guards RDB files (8 bytes after the EOF opcode) and DUMP payloads.

/// The reflected polynomial.
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;

const fn make_table() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    // Slicing-by-8 tables: t[k][i] is the CRC of byte i followed by k zeros.
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLE: [[u64; 256]; 8] = make_table();

/// Continues a CRC over `data`; start with 0.
pub fn update(mut crc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = crc ^ u64::from_le_bytes(w);
        crc = TABLE[7][(v & 0xff) as usize]
            ^ TABLE[6][((v >> 8) & 0xff) as usize]
            ^ TABLE[5][((v >> 16) & 0xff) as usize]
            ^ TABLE[4][((v >> 24) & 0xff) as usize]
            ^ TABLE[3][((v >> 32) & 0xff) as usize]
            ^ TABLE[2][((v >> 40) & 0xff) as usize]
            ^ TABLE[1][((v >> 48) & 0xff) as usize]
            ^ TABLE[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = TABLE[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_check_values() {
        // The value Redis's own crc64 test asserts.
        assert_eq!(update(0, b"123456789"), 0xe9c6d914c4b8d9ca);
        // DUMP of "v" by redis-server 7.0.15: body, then the CRC (LE).
        let body = [0x00, 0x01, b'v', 0x0a, 0x00];
        assert_eq!(
            update(0, &body).to_le_bytes(),
            [0x91, 0x08, 0xce, 0xb2, 0x19, 0x38, 0x8a, 0xce]
        );
    }

    #[test]
    fn incremental_equals_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = update(0, &data);
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            assert_eq!(update(update(0, &data[..split]), &data[split..]), whole);
        }
    }
}
