//! The function's own integration tests as one binary: its sample events, the Lambda path through the real
//! bootstrap, and the bootstrap killed mid-run.

mod events;
mod lambda_path;
mod reliability_crash;
