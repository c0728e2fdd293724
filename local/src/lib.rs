//! keeper's emulated AWS: AppStream, Image Builder, CloudFront and S3 on one port, spoken to by the real SDK clients.
//!
//! Requests are routed by the service named in their SigV4 credential scope; each service validates its input like
//! AWS, keeps state, and encodes replies and errors the way its protocol does, so the SDK yields the same typed
//! results it would from AWS. Faults can be injected per operation, and every call is logged so tests can assert
//! which calls happened and which did not.

pub mod appstream;
pub mod cloudfront;
pub mod diff;
pub mod faults;
pub mod imagebuilder;
pub mod s3;
pub mod server;
pub mod validate;
pub mod wire;
pub mod world;

pub use faults::{Call, FaultRule};
pub use server::{Emulator, Running, start};
pub use world::World;
