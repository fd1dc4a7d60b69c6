//! Payload masking (RFC 6455 §5.3).
//!
//! A client masks every frame it sends with a fresh 4-byte key; the server
//! unmasks. The operation is its own inverse: `payload[i] ^= key[(offset + i) % 4]`.
//! [`apply_mask`] does it 32 bytes at a time (the compiler turns the inner loop
//! into vector XORs); [`apply_mask_reference`] is the byte-wise definition,
//! kept for tests and benchmarks.

/// XORs `buf` with `key`, where `buf[0]` is byte number `offset` of the payload.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives.
///
/// ```
/// use rtwire::proto::mask::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut data = *b"Hello, world";
/// apply_mask(&mut data, key, 0);
/// // Unmasking in two pieces with the right offsets restores the text.
/// let (a, b) = data.split_at_mut(5);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 5);
/// assert_eq!(&data, b"Hello, world");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = rotate(key, offset);
    let pattern = [rotated; 8];
    let pattern = pattern.as_flattened();
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(pattern) {
            *b ^= k;
        }
    }
    // The tail is shorter than 32 bytes; it starts at a multiple of 4 from
    // `offset`, so the rotated key still lines up. Small frames are all
    // tail: a word at a time, then the last bytes.
    let word = u32::from_ne_bytes(rotated);
    let mut words = chunks.into_remainder().chunks_exact_mut(4);
    for w in &mut words {
        let masked = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) ^ word;
        w.copy_from_slice(&masked.to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(rotated) {
        *b ^= k;
    }
}

/// The byte-wise definition of masking, for tests and benchmarks.
///
/// ```
/// use rtwire::proto::mask::{apply_mask, apply_mask_reference};
/// let mut a = vec![7u8; 100];
/// let mut b = a.clone();
/// apply_mask(&mut a, [9, 8, 7, 6], 3);
/// apply_mask_reference(&mut b, [9, 8, 7, 6], 3);
/// assert_eq!(a, b);
/// ```
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        // 2^64 is a multiple of 4, so wrapping keeps the key position right.
        *b ^= key[offset.wrapping_add(i) % 4];
    }
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset % 4;
    [key[s], key[(s + 1) % 4], key[(s + 2) % 4], key[(s + 3) % 4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_mask_equals_reference_for_every_alignment_and_length() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let backing: Vec<u8> = (0..200u32).map(|i| (i * 31 + 7) as u8).collect();
        for start in 0..8 {
            for len in 0..=64 {
                for offset in 0..4 {
                    let mut fast = backing.clone();
                    let mut slow = backing.clone();
                    apply_mask(&mut fast[start..start + len], key, offset);
                    apply_mask_reference(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let original: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 2);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 2);
        assert_eq!(data, original);
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }
}
