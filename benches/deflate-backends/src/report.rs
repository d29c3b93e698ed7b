//! Markdown tables from the records of every backend and round.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::corpus::CASES;
use crate::throughput::LEVELS;

/// Backends in table order; those without records are left out.
const BACKENDS: [&str; 4] = ["zlib-rs", "miniz_oxide", "zlib-ng", "zlib"];

/// Reads the records in `paths` and prints the tables.
pub fn run(paths: &[String]) -> Result<(), String> {
    let mut records = Records::default();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        for line in text.lines().filter(|line| !line.is_empty()) {
            records
                .add(line)
                .map_err(|e| format!("{path}: {e}: {line:?}"))?;
        }
    }
    let backends: Vec<&str> = BACKENDS
        .into_iter()
        .filter(|backend| records.has(backend))
        .collect();
    let mut out = String::new();
    for level in LEVELS {
        throughput_table(&mut out, &records, &backends, level);
    }
    ratio_table(&mut out, &records, &backends);
    window_table(&mut out, &records, &backends);
    memory_table(&mut out, &records, &backends);
    print!("{out}");
    Ok(())
}

/// (backend, case, level, op) -> one rate per round.
type Rates = BTreeMap<(String, String, u32, String), Vec<(f64, f64)>>;

#[derive(Default)]
struct Records {
    rates: Rates,
    /// (backend, case, level) -> compressed size / original size.
    ratios: BTreeMap<(String, String, u32), f64>,
    /// (backend, bits) -> the window probe's fields.
    windows: BTreeMap<(String, u8), Vec<String>>,
    /// (backend, side, level, bits) -> heap bytes.
    memory: BTreeMap<(String, String, String, u8), usize>,
    clocks: Vec<String>,
}

impl Records {
    fn add(&mut self, line: &str) -> Result<(), String> {
        let fields: Vec<&str> = line.split('\t').collect();
        let number = |i: usize| -> Result<f64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("field {i} is not a number"))
        };
        match fields.as_slice() {
            ["throughput", backend, case, _, op, _, _, _, clock] => {
                let level = number(3)? as u32;
                let key = (backend.to_string(), case.to_string(), level, op.to_string());
                self.rates
                    .entry(key)
                    .or_default()
                    .push((number(5)?, number(6)?));
                self.ratios
                    .insert((backend.to_string(), case.to_string(), level), number(7)?);
                if !self.clocks.iter().any(|c| c == clock) {
                    self.clocks.push(clock.to_string());
                }
            }
            ["window", backend, _, rest @ ..] if rest.len() == 4 => {
                let bits = number(2)? as u8;
                let rest = rest.iter().map(|f| f.to_string()).collect();
                self.windows.insert((backend.to_string(), bits), rest);
            }
            ["memory", backend, side, level, _, _] => {
                let key = (backend.to_string(), side.to_string(), level.to_string());
                let (bits, bytes) = (number(4)? as u8, number(5)? as usize);
                self.memory.insert((key.0, key.1, key.2, bits), bytes);
            }
            _ => return Err("unknown record".to_owned()),
        }
        Ok(())
    }

    fn has(&self, backend: &str) -> bool {
        self.ratios.keys().any(|(b, _, _)| b == backend)
            || self.windows.keys().any(|(b, _)| b == backend)
    }

    /// The median rate of one cell over the rounds, and the number of rounds.
    fn median(&self, backend: &str, case: &str, level: u32, op: &str) -> Option<(f64, f64, usize)> {
        let key = (backend.to_owned(), case.to_owned(), level, op.to_owned());
        let rates = self.rates.get(&key)?;
        let bytes = median(rates.iter().map(|r| r.0).collect());
        let messages = median(rates.iter().map(|r| r.1).collect());
        Some((bytes, messages, rates.len()))
    }

    /// Median absolute deviation / median of one cell's MB/s over the rounds.
    fn spread(&self, backend: &str, case: &str, level: u32, op: &str) -> Option<f64> {
        let key = (backend.to_owned(), case.to_owned(), level, op.to_owned());
        let bytes: Vec<f64> = self.rates.get(&key)?.iter().map(|r| r.0).collect();
        let mid = median(bytes.clone());
        Some(median(bytes.iter().map(|b| (b - mid).abs()).collect()) / mid)
    }
}

fn throughput_table(out: &mut String, records: &Records, backends: &[&str], level: u32) {
    let rounds = records
        .rates
        .values()
        .map(Vec::len)
        .min()
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "### Throughput at level {level}\n\nMB/s of uncompressed payload · messages/s, median of \
         {rounds} rounds, per second of {} time. Last rows: geometric mean of the speed \
         relative to zlib-rs.\n",
        records.clocks.join(" / "),
    );
    header(out, &["case", "op"], backends);
    let mut relative: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut spreads = Vec::new();
    for op in ["compress", "decompress"] {
        for case in CASES {
            let _ = write!(out, "| {} | {op} |", case.name);
            let base = records.median(backends[0], case.name, level, op);
            for backend in backends {
                match records.median(backend, case.name, level, op) {
                    Some((bytes, messages, _)) => {
                        let _ = write!(out, " {} · {} |", megabytes(bytes), count(messages));
                        if let Some((base_bytes, _, _)) = base {
                            relative
                                .entry((op, backend))
                                .or_default()
                                .push(bytes / base_bytes);
                        }
                        spreads.extend(records.spread(backend, case.name, level, op));
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    for op in ["compress", "decompress"] {
        let _ = write!(out, "| **all cases** | {op} |");
        for backend in backends {
            let ratios = relative.get(&(op, *backend)).cloned().unwrap_or_default();
            let _ = write!(out, " **{:.2}×** |", geometric_mean(&ratios));
        }
        out.push('\n');
    }
    if !spreads.is_empty() {
        let _ = writeln!(
            out,
            "\nSpread between rounds (median absolute deviation / median of MB/s): {:.0} % in \
             the median cell, {:.0} % in the worst.",
            100.0 * median(spreads.clone()),
            100.0 * spreads.iter().cloned().fold(0.0, f64::max),
        );
    }
    out.push('\n');
}

fn ratio_table(out: &mut String, records: &Records, backends: &[&str]) {
    let _ = writeln!(
        out,
        "### Compressed size\n\nPercent of the original, at level 1 / level 6, sync-flush tail \
         removed (what goes on the wire).\n"
    );
    header(out, &["case"], backends);
    for case in CASES {
        let _ = write!(out, "| {} |", case.name);
        for backend in backends {
            let cells: Vec<String> = LEVELS
                .iter()
                .map(|&level| {
                    let key = (backend.to_string(), case.name.to_owned(), level);
                    match records.ratios.get(&key) {
                        Some(ratio) => format!("{:.1} %", 100.0 * ratio),
                        None => "–".to_owned(),
                    }
                })
                .collect();
            let _ = write!(out, " {} |", cells.join(" / "));
        }
        out.push('\n');
    }
    out.push('\n');
}

fn window_table(out: &mut String, records: &Records, backends: &[&str]) {
    let _ = writeln!(
        out,
        "### Raw deflate window sizes (RFC 7692 max_window_bits)\n\nPer window bits 9–15: can a \
         raw stream be made; does the compressor stay inside its window (a random block \
         repeated at exactly the window size must not shrink); does its output inflate with the \
         same window.\n"
    );
    let columns = [
        "compressor",
        "stays in window",
        "decompressor",
        "round trip",
    ];
    header(out, &["backend"], &columns);
    for backend in backends {
        let _ = write!(out, "| {backend} |");
        for column in 0..columns.len() {
            let values: Vec<(u8, &str)> = records
                .windows
                .iter()
                .filter(|((b, _), _)| b == backend)
                .map(|((_, bits), fields)| (*bits, fields[column].as_str()))
                .collect();
            let _ = write!(out, " {} |", by_bits(&values));
        }
        out.push('\n');
    }
    out.push('\n');
}

fn memory_table(out: &mut String, records: &Records, backends: &[&str]) {
    let _ = writeln!(
        out,
        "### Heap held per stream\n\nKiB allocated by one raw stream after one ~1 KiB message, \
         by window bits (– where the backend cannot make that window).\n"
    );
    let bits: Vec<u8> = {
        let mut bits: Vec<u8> = records.memory.keys().map(|k| k.3).collect();
        bits.sort_unstable();
        bits.dedup();
        bits
    };
    let titles: Vec<String> = bits.iter().map(|b| format!("{b} bits")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    header(out, &["backend", "stream"], &titles);
    let sides = [
        ("compressor", "1", "compressor, level 1"),
        ("compressor", "6", "compressor, level 6"),
        ("decompressor", "-", "decompressor"),
    ];
    for backend in backends {
        for (side, level, title) in sides {
            let _ = write!(out, "| {backend} | {title} |");
            for &b in &bits {
                let key = (backend.to_string(), side.to_owned(), level.to_owned(), b);
                match records.memory.get(&key) {
                    Some(bytes) => {
                        let _ = write!(out, " {:.1} |", *bytes as f64 / 1024.0);
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    out.push('\n');
}

fn header(out: &mut String, first: &[&str], rest: &[&str]) {
    let titles: Vec<&str> = first.iter().chain(rest).copied().collect();
    let _ = writeln!(out, "| {} |", titles.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(titles.len()));
}

/// Groups consecutive window sizes with the same value: `9–14: no API; 15: ok`.
fn by_bits(values: &[(u8, &str)]) -> String {
    let mut groups: Vec<(u8, u8, &str)> = Vec::new();
    for &(bits, value) in values {
        match groups.last_mut() {
            Some((_, last, v)) if *v == value && *last + 1 == bits => *last = bits,
            _ => groups.push((bits, bits, value)),
        }
    }
    if let [(_, _, value)] = groups.as_slice() {
        return (*value).to_owned();
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|&(first, last, value)| match first == last {
            true => format!("{first}: {value}"),
            false => format!("{first}–{last}: {value}"),
        })
        .collect();
    parts.join("; ")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

fn geometric_mean(values: &[f64]) -> f64 {
    let logs: f64 = values.iter().map(|v| v.ln()).sum();
    (logs / values.len() as f64).exp()
}

fn megabytes(bytes_per_second: f64) -> String {
    let mb = bytes_per_second / 1e6;
    if mb >= 100.0 {
        format!("{mb:.0}")
    } else {
        format!("{mb:.1}")
    }
}

fn count(per_second: f64) -> String {
    match per_second {
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.0} k", n / 1e3),
        n => format!("{n:.0}"),
    }
}
