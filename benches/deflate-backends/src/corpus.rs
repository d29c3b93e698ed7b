//! The messages compressed: JSON-like chat/market messages, English-like text and random bytes.
//!
//! All generated from fixed seeds, so every backend and every round sees the same bytes.

/// A payload shape measured, with how permessage-deflate treats it.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The name in the tables.
    pub name: &'static str,
    /// Whether the compressor and decompressor keep their history between messages
    /// (context takeover) or are reset after each message.
    pub takeover: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// About 100-byte JSON messages.
    SmallJson,
    /// About 1 KiB JSON messages.
    LargeJson,
    /// One English-like text payload of this many bytes.
    Text(usize),
    /// One random payload of this many bytes.
    Random(usize),
}

/// Every case, in table order.
pub const CASES: [Case; 8] = [
    Case::new("json 100 B, takeover", true, Kind::SmallJson),
    Case::new("json 100 B, no takeover", false, Kind::SmallJson),
    Case::new("json 1 KiB, takeover", true, Kind::LargeJson),
    Case::new("json 1 KiB, no takeover", false, Kind::LargeJson),
    Case::new("text 64 KiB", false, Kind::Text(64 << 10)),
    Case::new("random 64 KiB", false, Kind::Random(64 << 10)),
    Case::new("text 1 MiB", false, Kind::Text(1 << 20)),
    Case::new("random 1 MiB", false, Kind::Random(1 << 20)),
];

/// Bytes of distinct small messages per pass: more than the 32 KiB window, so that under
/// context takeover a message never finds its own copy from the previous pass.
const STREAM_BYTES: usize = 256 << 10;

impl Case {
    const fn new(name: &'static str, takeover: bool, kind: Kind) -> Self {
        Self {
            name,
            takeover,
            kind,
        }
    }

    /// The messages of one pass, sent in this order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0x5eed_0000 + self.name.len() as u64);
        match self.kind {
            Kind::SmallJson => stream(|seq| small_json(&mut rng, seq)),
            Kind::LargeJson => stream(|seq| large_json(&mut rng, seq)),
            Kind::Text(len) => vec![text(&mut rng, len)],
            Kind::Random(len) => vec![random(&mut rng, len)],
        }
    }
}

/// A one-message payload: ~1 KiB of JSON, as used to measure a stream's memory.
pub fn sample_message() -> Vec<u8> {
    large_json(&mut Rng::new(7), 1)
}

/// Random bytes, which deflate cannot shorten.
pub fn random(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small, fast, deterministic generator (xorshift64*); quality is irrelevant here.
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator; any seed works.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn stream(mut message: impl FnMut(u64) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut total = 0;
    let mut seq = 1000;
    while total < STREAM_BYTES {
        let next = message(seq);
        total += next.len();
        messages.push(next);
        seq += 1;
    }
    messages
}

const SYMBOLS: [&str; 6] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "ETH-BTC", "DOGE-USD", "ADA-EUR",
];
const SIDES: [&str; 2] = ["buy", "sell"];
const STATUSES: [&str; 4] = ["open", "filled", "cancelled", "partial"];

/// A market trade of about 100 bytes.
fn small_json(rng: &mut Rng, seq: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"trade","seq":{seq},"symbol":"{}","price":"{}.{:02}","size":"0.{:04}","side":"{}"}}"#,
        rng.pick(&SYMBOLS),
        20 + rng.below(60_000),
        rng.below(100),
        rng.below(10_000),
        rng.pick(&SIDES),
    )
    .into_bytes()
}

/// An order-book update of about 1 KiB: a header and eleven orders.
fn large_json(rng: &mut Rng, seq: u64) -> Vec<u8> {
    let mut out = format!(
        r#"{{"type":"orders","seq":{seq},"channel":"account.{}","ts":{},"orders":["#,
        rng.below(100_000),
        1_700_000_000_000 + seq * 37 + rng.below(37),
    );
    for i in 0..11 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{},"user":"u{}","symbol":"{}","status":"{}","price":"{}.{:02}","qty":{}}}"#,
            rng.below(10_000_000),
            rng.below(5_000),
            rng.pick(&SYMBOLS),
            rng.pick(&STATUSES),
            rng.below(5_000),
            rng.below(100),
            1 + rng.below(500),
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

/// English-like text: words from a fixed vocabulary of syllables, with punctuation and lines.
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    const SYLLABLES: [&str; 24] = [
        "the", "in", "con", "er", "ing", "tion", "re", "a", "pro", "de", "ly", "com", "an", "ter",
        "ex", "ment", "is", "or", "es", "ar", "ble", "ous", "to", "ver",
    ];
    let vocabulary: Vec<String> = (0..800)
        .map(|_| {
            let syllables = 1 + rng.below(3) + rng.below(2);
            (0..syllables).map(|_| rng.pick(&SYLLABLES)).collect()
        })
        .collect();
    let mut out = String::with_capacity(len + 32);
    let mut words_in_sentence = 0;
    while out.len() < len {
        // Zipf-like: a few words are very common, most are rare.
        let rank = (rng.below(800) * rng.below(800) / 800) as usize;
        let word = &vocabulary[rank];
        if words_in_sentence == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(word);
        }
        words_in_sentence += 1;
        if words_in_sentence > 6 && rng.below(8) == 0 {
            out.push_str(if rng.below(6) == 0 { ".\n" } else { ". " });
            words_in_sentence = 0;
        } else if rng.below(12) == 0 {
            out.push_str(", ");
        } else {
            out.push(' ');
        }
    }
    out.truncate(len);
    out.into_bytes()
}
