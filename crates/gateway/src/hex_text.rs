//! Lower-case hex for the ids a request carries (request id, trace and span ids; several per
//! request): eight bytes at a time in a 128-bit word, the rest a digit pair per byte. The `hex`
//! crate's `encode_to_slice` takes about three times the instructions for the same bytes.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lanes of a 128-bit word, one byte each.
const BYTES: u128 = u128::MAX / 0xff;

/// Writes the hex of `bytes` into `out`, two digits per byte, as far as both go (callers pass
/// `out` exactly twice as long).
pub fn encode_into(bytes: &[u8], out: &mut [u8]) {
    let mut ins = bytes.chunks_exact(8);
    let mut outs = out.chunks_exact_mut(16);
    for (eight, sixteen) in (&mut ins).zip(&mut outs) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        sixteen.copy_from_slice(&encode8(word));
    }
    for (pair, b) in outs
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(ins.remainder())
    {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The hex of `N` bytes as `M` (= 2 N) bytes.
pub fn encode<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    let mut out = [0u8; M];
    encode_into(bytes, &mut out);
    out
}

/// Sixteen digits for eight bytes: each byte spread into a 16-bit lane of its own (halves,
/// quarters, then bytes moved apart), its two nibbles split into the lane's two bytes, and each
/// nibble n made '0' + n, plus 39 (from '9' + 1 to 'a') where n > 9.
fn encode8(bytes: [u8; 8]) -> [u8; 16] {
    let x = u128::from(u64::from_be_bytes(bytes));
    // Each 32-bit half into the low half of a 64-bit lane, each 16-bit quarter into the low
    // half of a 32-bit lane, each byte into the low half of a 16-bit lane.
    let x = ((x >> 32) << 64) | (x & 0xffff_ffff);
    let x = ((x & 0x0000_0000_ffff_0000_0000_0000_ffff_0000) << 16)
        | (x & 0x0000_0000_0000_ffff_0000_0000_0000_ffff);
    let x = ((x & 0x0000_ff00_0000_ff00_0000_ff00_0000_ff00) << 8)
        | (x & 0x0000_00ff_0000_00ff_0000_00ff_0000_00ff);
    // High nibble in the lane's first byte, low nibble in its second.
    let nibbles = ((x & 0x00f0_00f0_00f0_00f0_00f0_00f0_00f0_00f0) << 4)
        | (x & 0x000f_000f_000f_000f_000f_000f_000f_000f);
    let letters = ((nibbles + BYTES * 6) >> 4) & BYTES;
    (nibbles + BYTES * u128::from(b'0') + letters * u128::from(b'a' - b'9' - 1)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_hex_crate_for_every_byte_at_every_offset() {
        let all: Vec<u8> = (0..=255).collect();
        for len in [0, 1, 7, 8, 9, 16, 23, 256] {
            for start in 0..8 {
                let bytes = all.iter().cycle().skip(start * 37).take(len).copied();
                let bytes: Vec<u8> = bytes.collect();
                let mut out = vec![0u8; 2 * len];
                encode_into(&bytes, &mut out);
                assert_eq!(out, hex::encode(&bytes).into_bytes(), "{bytes:?}");
            }
        }
        let id = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x7f, 0x80];
        assert_eq!(&encode::<8, 16>(&id), b"deadbeef00017f80");
        for _ in 0..10_000 {
            let word = fastrand::u64(..).to_be_bytes();
            assert_eq!(encode8(word).to_vec(), hex::encode(word).into_bytes());
        }
    }
}
