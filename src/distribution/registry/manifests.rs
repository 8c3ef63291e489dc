//! Manifests by tag or digest: `GET` with the `Accept` types a registry
//! needs to answer (OCI and docker, manifests and indexes), `PUT` with the
//! manifest's own `Content-Type`.
use super::client::{Call, Client, Payload};
use crate::distribution::media_types;
use crate::error::Result;
use ureq::http::Method;

/// What we accept: we push OCI image manifests, but a registry answers a
/// request that lists none of a manifest's type with 404 (distribution
/// 2.8 does), and "not there" would be a lie.
const ACCEPT: &str = concat!(
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json"
);

pub fn get(client: &Client, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>> {
    debug_assert!(ACCEPT.starts_with(media_types::IMAGE_MANIFEST));
    let call = Call::new(
        Method::GET,
        client.url(&format!("manifests/{tag_or_digest}")),
    )
    .header("accept", ACCEPT);
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200 => client.read_body(&call, response, max).map(Some),
        404 => Ok(None),
        _ => Err(client.unexpected(&call, response)),
    }
}

pub fn put(client: &Client, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
    let call = Call::new(Method::PUT, client.url(&format!("manifests/{tag}")))
        .header("content-type", media_type)
        .payload(Payload::Bytes(bytes));
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        _ => Err(client.unexpected(&call, response)),
    }
}
