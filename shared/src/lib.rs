//! What keeper's Lambda functions share: the host they run in, and triggers, idempotency, retries, configuration,
//! clients, telemetry and reports.
//!
//! Every function runs one pipeline, inside the [`host`]:
//!
//! ```text
//! payload --trigger::parse--> Trigger<Request> --guard--> observe (aws.rs) --> plan (plan.rs, pure) --> apply (aws.rs) --> Report
//! ```
//!
//! | module | job |
//! |---|---|
//! | [`host`] | the `Function` trait and the generic host: settings once, guard, dry run, answer, metrics |
//! | [`trigger`] | payload → `Trigger` (schedule, SNS, S3, EventBridge, by hand) with a stable event id; `Input`s |
//! | [`idempotency`] | the event guard (DynamoDB or memory) and deterministic client tokens |
//! | [`retry`] | the SDK retry classifier that fixes the SDK's gaps; the bounded read-modify-write loop |
//! | [`config`] | typed settings from a lookup (the environment, or a map in tests) |
//! | [`clients`] | the one AWS configuration per process; service clients with keeper's retries; per-region clients |
//! | [`paging`] | page limits and repeated-token stops for the listings the SDK has no paginator for |
//! | [`s3`] | the S3 client and the bounded object read of uploaded keys and documents |
//! | [`telemetry`] | logs in Lambda's JSON format; the EMF line of counters |
//! | [`report`] | the response: its actions and outcomes, and whether what failed may pass |
//! | [`classify`] | the stable error types (`Permanent.*`, `Retryable.*`) and the `Classify` trait |
//! | [`answer`] | the Lambda answer rule: which failures are function errors, which are reports |
//! | [`hash`] | canonical JSON and SHA-256 hex, for event ids, tokens and marks |
//! | [`error`] | `InvalidInput`, the one failure every function shares |
//! | [`aws_error`] | any SDK error → AWS code, message and stable type |
//! | [`regions`] | the known region codes, with did-you-mean |
//! | [`public_key`] | the PEM public keys CloudFront accepts |

pub mod answer;
pub mod aws_error;
pub mod classify;
pub mod clients;
pub mod config;
pub mod error;
pub mod hash;
pub mod host;
pub mod idempotency;
pub mod lost_answer;
pub mod paging;
pub mod public_key;
pub mod regions;
pub mod report;
pub mod retry;
pub mod s3;
pub mod telemetry;
pub mod trigger;
