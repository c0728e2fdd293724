//! keeper's emulated AWS: AppStream, Image Builder, CloudFront, Secrets Manager and S3 on one port, spoken to by the
//! real SDK clients.
//!
//! Requests are routed by the service named in their SigV4 credential scope; each service validates its input like
//! AWS, keeps state, and encodes replies and errors the way its protocol does, so the SDK yields the same typed
//! results it would from AWS. Faults can be injected per operation, and every call is logged so tests can assert
//! which calls happened and which did not. It depends on no keeper function and shares no code with them: it is the
//! judge of their calls, not a party to them.
//!
//! | module | job |
//! |---|---|
//! | [`server`] | the one HTTP server: routing by SigV4 scope, faults, the call log, the admin API |
//! | [`auth`] | credentials: any key by default, SigV4 verified against the documented pair on request |
//! | [`wire`] | what every service shares on the wire: the scope, the request, errors, replies, the body type |
//! | [`model`] | the service models' constraints (generated from botocore) and the validator every request passes |
//! | [`validate`] | the rules the models cannot express (cross-field, state), with each service's validation error |
//! | [`appstream`] | AppStream image builders in awsJson1_1 and RPC v2 CBOR, with their state machine |
//! | [`imagebuilder`] | Image Builder distribution configurations, images, lifecycle executions, client tokens |
//! | [`cloudfront`] | CloudFront public keys and key groups in restXml, with ETags and quotas |
//! | [`secretsmanager`] | Secrets Manager secrets, versions and staging labels; rotation requests left to a driver |
//! | [`s3`] | S3 objects through the `s3s` crate |
//! | [`world`] | the account: each service's state per region, seeded and dumped as JSON |
//! | [`faults`] | injected errors and latency; the call log's entries |
//! | [`clock`] | now, ISO-8601 dates, how fast timed transitions run |
//! | [`diff`] | what changed between two dumps, for people |
//! | [`client`] | the endpoint and credentials an SDK client uses to reach a local server |
//! | [`testing`] | what tests on the emulator share |

pub mod appstream;
pub mod auth;
pub mod client;
pub mod clock;
pub mod cloudfront;
pub mod diff;
pub mod faults;
pub mod imagebuilder;
pub mod model;
pub mod s3;
pub mod secretsmanager;
pub mod server;
pub mod testing;
pub mod validate;
pub mod wire;
pub mod world;

pub use faults::{Call, FaultRule};
pub use server::{Emulator, Held, Running, start};
pub use world::World;
