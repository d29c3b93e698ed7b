//! Measures one flate2 backend the way wsio's permessage-deflate (RFC 7692) uses it.
//!
//! flate2 links exactly one backend per build, chosen here by a cargo feature; `run` builds this
//! binary once per backend and alternates them. Subcommands:
//!
//! ```text
//! deflate-backends bench [--budget-ms N]   throughput records (TSV) on stdout
//! deflate-backends probe                   window-bit support and memory records (TSV)
//! deflate-backends report FILE...          Markdown tables from the records of all backends
//! ```

mod alloc_counter;
mod clock;
mod corpus;
mod probe;
mod report;
mod stream;
mod throughput;

use std::process::ExitCode;

#[cfg(not(any(
    feature = "zlib-rs",
    feature = "miniz_oxide",
    feature = "zlib-ng",
    feature = "zlib"
)))]
compile_error!("enable one backend feature: zlib-rs, miniz_oxide, zlib-ng or zlib");

#[cfg(any(
    all(
        feature = "zlib-rs",
        any(feature = "miniz_oxide", feature = "zlib-ng", feature = "zlib")
    ),
    all(feature = "miniz_oxide", any(feature = "zlib-ng", feature = "zlib")),
    all(feature = "zlib-ng", feature = "zlib"),
))]
compile_error!("enable only one backend feature: flate2 would silently pick one of them");

/// The backend this binary was built with, as named in the tables.
#[cfg(feature = "zlib-rs")]
const BACKEND: &str = "zlib-rs";
#[cfg(feature = "miniz_oxide")]
const BACKEND: &str = "miniz_oxide";
#[cfg(feature = "zlib-ng")]
const BACKEND: &str = "zlib-ng";
#[cfg(feature = "zlib")]
const BACKEND: &str = "zlib";

/// How long each measurement runs by default, in CPU milliseconds.
const DEFAULT_BUDGET_MS: u64 = 150;

const USAGE: &str = "usage: deflate-backends bench [--budget-ms N] | probe | report FILE...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => budget(&args[1..]).map(|budget| throughput::run(BACKEND, budget)),
        Some("probe") if args.len() == 1 => {
            probe::run(BACKEND);
            Ok(())
        }
        Some("report") if args.len() > 1 => report::run(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `[--budget-ms N]`.
fn budget(args: &[String]) -> Result<std::time::Duration, String> {
    let ms = match args {
        [] => DEFAULT_BUDGET_MS,
        [flag, value] if flag == "--budget-ms" => value
            .parse()
            .map_err(|_| format!("--budget-ms takes milliseconds, not {value:?}"))?,
        _ => return Err(USAGE.to_owned()),
    };
    Ok(std::time::Duration::from_millis(ms))
}
