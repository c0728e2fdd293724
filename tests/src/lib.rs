//! Support for keeper's end-to-end tests: real servers and tools started on loopback for the duration of one test.

pub mod emulator;
pub mod moto;
pub mod samples;
pub mod tools;
