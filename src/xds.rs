//! The xDS server: Envoy's Aggregated Discovery Service (state of the world and delta)
//! and the Client Status Discovery Service, serving each proxy the configuration the
//! compiler builds for it. Knows nothing of App Mesh beyond the proxy identity.

mod delta;
mod hub;
mod server;
mod snapshot;
mod sotw;
mod status;

pub use delta::DeltaStream;
pub use hub::{DEFAULT_DEBOUNCE, Hub};
pub use server::{XdsService, identify};
pub use snapshot::{Interner, ProxySnapshot, TypeSnapshot, XdsResource};
pub use sotw::{ProtocolError, SotwStream, Subscription};
pub use status::{Nack, StreamKind, StreamStatus, TypeStatus, type_label};
