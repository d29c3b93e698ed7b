//! Payload masking (RFC 6455 §5.3).

/// XORs `data` in place with the 4-byte masking `key`, as if `data` began `offset` bytes into
/// the masked payload.
///
/// Masking and unmasking are the same operation. The `offset` lets a payload be unmasked piece by
/// piece as it arrives.
///
/// ```
/// use wsio::proto::apply_mask;
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut data = *b"Hello";
/// apply_mask(&mut data, key, 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// apply_mask(&mut data[..2], key, 0);
/// apply_mask(&mut data[2..], key, 2);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    // Word-at-a-time: LLVM turns the fixed-size chunk loop into SIMD XORs, which keeps this
    // within a small factor of memcpy without any `unsafe`.
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for word in chunk.chunks_exact_mut(8) {
            let value = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ wide;
            word.copy_from_slice(&value.to_ne_bytes());
        }
    }
    let rest = chunks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes(word.try_into().expect("8-byte chunk")) ^ wide;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Byte-by-byte masking: the reference that the fast path is tested (and fuzzed) against.
pub fn apply_mask_reference(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (index, byte) in data.iter_mut().enumerate() {
        // Wrapping is exact: 2^64 is a multiple of 4.
        *byte ^= key[offset.wrapping_add(index) % 4];
    }
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset % 4);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_near_the_top_of_usize_wrap() {
        let mut fast = [0u8; 2];
        let mut slow = [0u8; 2];
        apply_mask(&mut fast, [0x37, 0xfa, 0x2d, 0xc3], usize::MAX);
        apply_mask_reference(&mut slow, [0x37, 0xfa, 0x2d, 0xc3], usize::MAX);
        assert_eq!(slow, [0xc3, 0x37]);
        assert_eq!(fast, slow);
    }

    proptest! {
        #[test]
        fn fast_path_matches_reference(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in 0usize..16,
        ) {
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast, key, offset);
            apply_mask_reference(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn piecewise_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            key in any::<[u8; 4]>(),
            split in 0usize..200,
        ) {
            let split = split.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data;
            let (head, tail) = pieces.split_at_mut(split);
            apply_mask(head, key, 0);
            apply_mask(tail, key, split);
            prop_assert_eq!(whole, pieces);
        }
    }
}
