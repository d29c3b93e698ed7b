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
    // The key as it lines up with `data[0]`: rotating the bytes left is a right rotation of
    // their little-endian value.
    let shift = (offset % 4) as u32 * 8;
    let key = u32::from_le_bytes(key).rotate_right(shift).to_le_bytes();
    // 32 bytes at a time with a 32-byte key: a fixed-size XOR that LLVM turns into SIMD
    // (two SSE2 or one AVX2 operation), so this runs near memcpy speed without `unsafe`.
    let wide: [u8; 32] = std::array::from_fn(|index| key[index % 4]);
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for (byte, k) in chunk.iter_mut().zip(&wide) {
            *byte ^= k;
        }
    }
    // The key repeats every 4 bytes, so the tail lines up with the start of `wide`.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(&wide) {
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
