//! What keeper's Lambda functions share: triggers, idempotency, retries, configuration, clients, telemetry, reports.
//!
//! Every function runs one pipeline: payload --[`trigger`]--> request --observe--> state --plan--> plan --apply-->
//! [`report::Report`], inside the event guard of [`idempotency`].

pub mod aws_error;
pub mod clients;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod invocation;
pub mod public_key;
pub mod regions;
pub mod report;
pub mod retry;
pub mod telemetry;
pub mod trigger;
