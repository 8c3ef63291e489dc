//! Reading blobs: `HEAD` for the size, `GET` of the whole (bounded) and
//! `GET` with `Range` of a piece. Both GETs follow redirects: registries
//! send blob reads to their storage. The bytes are not trusted here; the
//! caller checks digests and leaf hashes.
use super::client::{content_length, header, Call, Client};
use crate::error::{Error, Result};
use crate::progress::Monitor;
use ureq::http::Method;

/// The size of blob `digest`, `None` if the repository lacks it.
pub fn size(client: &Client, digest: &str) -> Result<Option<u64>> {
    let call = Call::new(Method::HEAD, client.url(&format!("blobs/{digest}")));
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200 => content_length(&response)
            .map(Some)
            .ok_or_else(|| client.malformed(&call, "no Content-Length for the blob")),
        404 => Ok(None),
        _ => Err(client.unexpected(&call, response)),
    }
}

fn not_found(client: &Client, digest: &str) -> Error {
    Error::Registry(format!("blob {digest} not found in {}", client.place))
}

/// The whole blob, at most `max` bytes.
pub fn get(client: &Client, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>> {
    let call = Call::new(Method::GET, client.url(&format!("blobs/{digest}"))).monitor(monitor);
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200 => client.read_body(&call, response, max),
        404 => Err(not_found(client, digest)),
        _ => Err(client.unexpected(&call, response)),
    }
}

/// Exactly `len` bytes of the blob from `offset`, into `out`.
pub fn get_range(
    client: &Client,
    digest: &str,
    offset: u64,
    len: u64,
    out: &mut Vec<u8>,
    monitor: &Monitor,
) -> Result<()> {
    out.clear();
    if len == 0 {
        return Ok(());
    }
    let last = offset.checked_add(len - 1).ok_or_else(|| {
        Error::InvalidArgument(format!("range {offset}+{len} of blob {digest} overflows"))
    })?;
    let call = Call::new(Method::GET, client.url(&format!("blobs/{digest}")))
        .header("range", format!("bytes={offset}-{last}"))
        .monitor(monitor);
    let response = client.send(&call)?;
    let status = response.status().as_u16();
    let short = |got: u64| client.malformed(&call, &format!("{got} bytes of the {len} asked for"));
    match status {
        206 => {
            if let Some(range) = header(&response, "content-range") {
                if content_range_start(range) != Some(offset) {
                    return Err(client.malformed(&call, "a range other than the one asked for"));
                }
            }
            if content_length(&response).is_some_and(|n| n != len) {
                return Err(client.malformed(&call, "a range of another length than asked for"));
            }
            let mut reader = response.into_body().into_reader();
            out.reserve(len as usize);
            let got = client.read_into(&call, &mut reader, out, len)?;
            if got != len {
                return Err(short(got));
            }
            Client::release(&mut reader);
            Ok(())
        }
        // A registry (or its storage) that ignores Range sends it all:
        // read up to the range and no further.
        200 => {
            let mut reader = response.into_body().into_reader();
            if !client.skip(&call, &mut reader, offset)? {
                return Err(client.malformed(&call, "the blob is shorter than the range's start"));
            }
            out.reserve(len as usize);
            let got = client.read_into(&call, &mut reader, out, len)?;
            if got != len {
                return Err(short(got));
            }
            Ok(())
        }
        404 => Err(not_found(client, digest)),
        416 => Err(client.malformed(&call, "the range is beyond the blob's end")),
        _ => Err(client.unexpected(&call, response)),
    }
}

/// The first byte of `bytes A-B/TOTAL`.
fn content_range_start(value: &str) -> Option<u64> {
    let value = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = value.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_starts() {
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes x-2/3"), None);
    }
}
