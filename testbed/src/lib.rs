//! What keeper's tests stand on, shared by the functions' own tests and the end-to-end suites in `tests/`: real
//! servers and tools started on loopback for the duration of one test. It depends on no function, so any function's
//! tests can use it without building the others.
//!
//! | module | job |
//! |---|---|
//! | [`emulator`] | the emulated AWS per test, with SDK settings that retry fast against it |
//! | [`guard`] | the idempotency guard of the function suites: memory, or DynamoDB on moto (`KEEPER_TEST_GUARD`) |
//! | [`moto`] | a moto server (DynamoDB) per test |
//! | [`lambda`] | the Lambda path: `cargo lambda watch` and `cargo lambda invoke` around a function's bootstrap |
//! | [`runtime_api`] | the Lambda runtime API under a test's control (deadlines, a bootstrap killed mid-run) |
//! | [`crash`] | a run ended in the middle (SIGKILL of the bootstrap, a panic in the handler), then redelivered |
//! | [`samples`] | the sample events in `events/` |
//! | [`tools`] | the venv's tools (moto_server, cargo-lambda), installed when missing |

pub mod crash;
pub mod emulator;
pub mod guard;
pub mod lambda;
pub mod moto;
pub mod runtime_api;
pub mod samples;
pub mod tools;
