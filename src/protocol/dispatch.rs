//! Erased resources: `Resource` impls behind `dyn`, converting Value <-> typed state,
//! and the generic plan algorithm described in `resource.rs`.

use std::sync::Arc;

use super::resource::{DataSource, Resource};
use super::schema::Schema;

pub trait ErasedResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
}

pub trait ErasedDataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
}

struct ResourceAdapter<R>(R);
impl<R: Resource> ErasedResource for ResourceAdapter<R> {
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn schema(&self) -> Schema {
        self.0.schema()
    }
}
struct DataSourceAdapter<D>(D);
impl<D: DataSource> ErasedDataSource for DataSourceAdapter<D> {
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn schema(&self) -> Schema {
        self.0.schema()
    }
}

pub fn erase_resource<R: Resource>(r: R) -> Arc<dyn ErasedResource> {
    Arc::new(ResourceAdapter(r))
}
pub fn erase_data_source<D: DataSource>(d: D) -> Arc<dyn ErasedDataSource> {
    Arc::new(DataSourceAdapter(d))
}
