//! `apply_mask` and `extend_unmasked` agree with `apply_mask_reference` for any key, offset and
//! length, and masking in two pieces (the second at offset + split) equals masking whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::{apply_mask, apply_mask_reference, extend_unmasked};

fuzz_target!(|input: &[u8]| {
    let Some((head, data)) = input.split_first_chunk::<14>() else {
        return;
    };
    let key = [head[0], head[1], head[2], head[3]];
    let offset = usize::from_le_bytes(head[4..12].try_into().unwrap());
    let split = usize::from(u16::from_le_bytes([head[12], head[13]])) % (data.len() + 1);

    let mut fast = data.to_vec();
    apply_mask(&mut fast, key, offset);
    let mut reference = data.to_vec();
    apply_mask_reference(&mut reference, key, offset);
    assert_eq!(fast, reference, "fast path differs from the reference");

    let mut pieces = data.to_vec();
    let (first, second) = pieces.split_at_mut(split);
    apply_mask(first, key, offset);
    apply_mask(second, key, offset.wrapping_add(split));
    assert_eq!(
        pieces, fast,
        "masking in two pieces differs from masking whole"
    );

    // Appending after a prefix as long as `split`, in two pieces: the stage blocks then start
    // at every alignment to the key and to the destination.
    let mut appended = bytes::BytesMut::from(&data[..split]);
    extend_unmasked(&mut appended, &data[..split], key, offset);
    extend_unmasked(
        &mut appended,
        &data[split..],
        key,
        offset.wrapping_add(split),
    );
    assert_eq!(&appended[..split], &data[..split], "the prefix changed");
    assert_eq!(
        &appended[split..],
        &fast[..],
        "extend_unmasked differs from the reference"
    );
});
