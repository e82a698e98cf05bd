//! meshd: a self-hosted, AWS App Mesh-compatible control plane for Envoy.
//!
//! See ARCHITECTURE.md for how the modules fit together.

pub mod access;
pub mod api;
pub mod apply;
pub mod aws_sdk;
pub mod bootstrap;
pub mod certificates;
pub mod cli;
pub mod cloud_map;
pub mod compile;
pub mod console;
pub mod definition;
pub mod discovery;
pub mod feed;
pub mod hub;
pub mod listen;
pub mod metrics;
pub mod model;
pub mod net;
pub mod server;
pub mod store;
pub mod xds;
