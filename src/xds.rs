//! The xDS server: Envoy's Aggregated Discovery Service (state of the world and delta)
//! and the Client Status Discovery Service. The protocol and nothing else: who a proxy
//! is, whether it may stream, and what it is served come from a [`Control`] (App Mesh's
//! side of that lives in `access` and `hub`).

mod delta;
mod server;
mod snapshot;
mod sotw;
mod status;
mod sync;

pub use delta::DeltaStream;
pub use server::{Admission, Control, Peer, StreamRegistry, XdsService};
pub use snapshot::{Interner, ProxySnapshot, TypeSnapshot, XdsResource};
pub use sotw::{ProtocolError, SotwStream, Subscription};
pub use status::{
    NACK_DETAIL_LIMIT, Nack, StatusSource, StreamKind, StreamStatus, TypeStatus, truncated,
    type_label,
};
