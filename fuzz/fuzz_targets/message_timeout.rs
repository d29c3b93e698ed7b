//! A whole `Connection` with `Config::message_timeout`, driven by a structured script with a
//! synthetic clock; see `run_with_message_timeout` in `src/connection.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsio_fuzz::connection::run_with_message_timeout(data));
