//! Differential against httparse: whenever `RequestParser` accepts a request, httparse parses a
//! complete request of the same length with the same method, target and header fields in order.
//!
//! Only that direction: httparse is deliberately more lenient (bare LF, other methods and
//! versions, obs-text in the target), so its accepting says nothing about ours.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::handshake::RequestParser;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(request)) = RequestParser::default().receive(data) else {
        return;
    };
    let head_len = data.len() - request.leftover().len();

    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut reference = httparse::Request::new(&mut fields);
    let parsed = reference.parse(data);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(head_len)),
        "httparse on {request:?}"
    );
    assert_eq!(reference.method, Some(request.method()));
    assert_eq!(reference.path, Some(request.target()));
    assert_eq!(reference.version, Some(1));
    let theirs: Vec<(&str, &[u8])> = reference
        .headers
        .iter()
        .map(|field| (field.name, field.value))
        .collect();
    let ours: Vec<(&str, &[u8])> = request
        .headers()
        .iter()
        .map(|(name, value)| (name, value.as_bytes()))
        .collect();
    assert_eq!(ours, theirs, "header fields differ");
});
