//! `Utf8Validator` fed the input in arbitrary chunks agrees with `std::str::from_utf8` on the
//! whole; `feed` fails exactly when the data holds an invalid sequence (not merely a truncated
//! one), no earlier than the chunk holding its first byte and no later than the chunk where it
//! becomes certain; and `finish` resets the validator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::Utf8Validator;
use wsio_fuzz::Split;

fuzz_target!(|input: &[u8]| {
    let Some(split) = Split::new(input) else {
        return;
    };
    let data = split.data;
    let expected = std::str::from_utf8(data);
    // For an invalid sequence (not a truncated one at the end): where it starts, and the byte
    // just past it, by which it is certain.
    let bounds = expected.err().and_then(|error| {
        let len = error.error_len()?;
        Some((error.valid_up_to(), error.valid_up_to() + len))
    });

    let mut validator = Utf8Validator::default();
    let mut fed = 0;
    let mut failed_at = None;
    for chunk in split.chunks() {
        if validator.feed(chunk).is_err() {
            failed_at = Some((fed, fed + chunk.len()));
            break;
        }
        fed += chunk.len();
    }
    let finished = failed_at.is_none() && validator.finish().is_ok();
    assert_eq!(finished, expected.is_ok(), "validator disagrees with std");
    assert_eq!(
        failed_at.is_some(),
        bounds.is_some(),
        "feed failed on a valid prefix or missed"
    );
    if let (Some((start, end)), Some((invalid, certain))) = (failed_at, bounds) {
        assert!(
            end > invalid,
            "failed in chunk {start}..{end}, before the error at {invalid}"
        );
        assert!(
            start <= certain,
            "failed in chunk {start}..{end}, after {certain}"
        );
    }

    let _ = validator.finish();
    let again = validator.feed(data).is_ok() && validator.finish().is_ok();
    assert_eq!(again, expected.is_ok(), "validator not reset by finish");
});
