//! Terraform plugin protocol v6 over gRPC, owned by this project (see ARCHITECTURE.md).
//! Knows nothing of labs: `main.rs` hands it a `Provider`.

pub mod codec;
pub mod diag;
pub mod dispatch;
pub mod docs;
pub mod handshake;
pub mod log;
pub mod resource;
pub mod schema;
pub mod serde_bridge;
pub mod server;
pub mod tls;
pub mod types_json;
pub mod value;

/// Code generated from `proto/` by build.rs.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// go-plugin's controller, stdio and broker services.
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

pub use diag::{AttrPath, DiagResultExt, Diagnostic, Diagnostics, Severity};
pub use resource::{Attr, DataSource, OpContext, PlanRequest, Planned, Provider, Resource};
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema};
pub use value::{Number, Type, Value};
