//! Support for keeper's end-to-end tests: real servers started on loopback for the duration of one test.

pub mod emulator;
pub mod moto;
