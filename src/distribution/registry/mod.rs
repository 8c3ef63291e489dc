//! The registry store: the OCI distribution API over HTTP(S).
use crate::distribution::store::{Access, Store};
use crate::distribution::RemoteOptions;
use crate::error::{Error, Result};

pub fn open(
    host: &str,
    repository: &str,
    _remote: &RemoteOptions,
    _access: Access,
) -> Result<Box<dyn Store>> {
    Err(Error::Unsupported(format!(
        "registry transport to {host}/{repository} is not built yet"
    )))
}
