//! Differential against httparse: whenever `RequestParser` accepts a request, httparse parses a
//! complete request of the same length with the same method, target and header fields in order,
//! values byte for byte (obs-text included); and the `&str` view of the fields is exactly the
//! fields whose value is UTF-8.
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
    let ours: Vec<(&str, &[u8])> = request.headers().iter_bytes().collect();
    assert_eq!(ours, theirs, "header fields differ");

    let utf8: Vec<(&str, &str)> = ours
        .iter()
        .filter_map(|&(name, value)| Some((name, std::str::from_utf8(value).ok()?)))
        .collect();
    assert_eq!(request.headers().iter().collect::<Vec<_>>(), utf8);
    for &(name, _) in &ours {
        let first = ours
            .iter()
            .find(|(other, _)| other.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value);
        assert_eq!(request.headers().get_bytes(name), first);
        assert_eq!(
            request.headers().get(name),
            first.and_then(|value| std::str::from_utf8(value).ok())
        );
    }
});
