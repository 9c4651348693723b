//! Redis Cluster key slots, for
//! [`accepts_successor`](crate::store::SessionStore::accepts_successor): a rotation
//! needs the old and the new key in one slot.

use crate::store::StorageKey;

/// The CRC16 of Redis Cluster's key slots (CRC-16/XMODEM: polynomial
/// 0x1021, no reflection, initial value 0), one byte at a time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: impl IntoIterator<Item = u8>) -> u16 {
    bytes.into_iter().fold(0, |crc, byte| (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)])
}

/// The Redis Cluster slot of a session key (`{prefix}{<hex digest>}`,
/// hashed on its tag, the lower-case hex digest): CRC16 of the tag modulo
/// 16384, computed without building the key.
pub(super) fn key_slot(key: &StorageKey) -> u16 {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = key.as_bytes().iter().flat_map(|&b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
    crc16(hex) & 0x3fff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // CRC-16/XMODEM's check value, and slots from `CLUSTER KEYSLOT`.
        assert_eq!(crc16(*b"123456789"), 0x31c3);
        assert_eq!(crc16(*b"foo") & 0x3fff, 12182);
        assert_eq!(crc16(*b"bar") & 0x3fff, 5061);
        for bytes in [[0u8; 32], [0xff; 32], [0x5a; 32]] {
            let key = StorageKey::from_bytes(bytes);
            assert_eq!(key_slot(&key), crc16(key.to_hex().bytes()) & 0x3fff);
        }
    }
}
