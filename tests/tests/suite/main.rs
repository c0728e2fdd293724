//! keeper's end-to-end suite as one test binary (each module was a binary of its own, and each linked the AWS
//! SDK): the functions against the emulator, the reliability suites, the timeline simulation, the DynamoDB guard
//! against moto, the retry classifier, least privilege and the workspace's shape. Filter by module:
//! `cargo test --workspace --test suite rotate_key_group::` (one package alone would build the SDK again with other
//! features).

#![recursion_limit = "256"]

mod idempotency_stores;
mod least_privilege;
mod reliability_bad_input;
mod reliability_deadline;
mod reliability_duplicate_delivery;
mod reliability_fault_storm;
mod reliability_properties;
mod reliability_races;
mod retry_classifier;
mod rotate_key_group;
mod simulation;
mod start_idle_image_builders;
mod update_distribution_regions;
mod update_image_lifecycle;
mod workspace_shape;
