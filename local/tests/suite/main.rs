//! The emulator's integration tests as one binary: each service over HTTP with the real SDK clients, the
//! credentials check, the admin API and the conformance of every operation to the service models.

mod appstream;
mod cloudfront;
mod credentials;
mod imagebuilder;
mod model_conformance;
mod s3_and_admin;
mod secretsmanager;
mod support;
