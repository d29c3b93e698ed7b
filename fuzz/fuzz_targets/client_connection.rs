//! A whole client `Connection` driven by a structured script; see `src/connection.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::Role;

fuzz_target!(|data: &[u8]| wsio_fuzz::connection::run(Role::Client, data));
