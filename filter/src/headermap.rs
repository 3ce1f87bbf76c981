//! Request headers as the proxy hands them over, read in place.
//!
//! proxy-wasm serializes a header map into one buffer: a little-endian `u32`
//! count `n`, then `n` pairs of `u32` lengths (name, value), then each name
//! and each value followed by a NUL byte. The SDK's reader copies every name
//! and value into a `String` and **panics on a value that is not UTF-8**;
//! HTTP/1.1 allows such bytes (obs-text) and Envoy forwards them, so one
//! request with `X-Any: caf\xe9` aborted the VM and every later request on
//! that worker got a 503. This reader allocates no string, checks every bound,
//! and reports which entries are not UTF-8 instead of failing.

use std::ops::Range;

/// A serialized header map and the positions of its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    entries: Vec<(Range<usize>, Range<usize>)>,
}

/// The buffer does not have the serialized map's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("header map: malformed serialization")]
pub struct MalformedHeaderMap;

/// The UTF-8 view of a [`HeaderMap`].
#[derive(Debug, Default)]
pub struct Utf8Headers<'a> {
    /// Every entry whose name and value are UTF-8, in order.
    pub valid: Vec<(&'a str, &'a str)>,
    /// The names (bytes) of the entries whose name or value is not.
    pub invalid: Vec<&'a [u8]>,
}

impl HeaderMap {
    /// Reads a serialized map; an empty buffer is an empty map.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, MalformedHeaderMap> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let word = |at: usize| -> Result<usize, MalformedHeaderMap> {
            let b = bytes
                .get(at..at.checked_add(4).ok_or(MalformedHeaderMap)?)
                .ok_or(MalformedHeaderMap)?;
            let b = <[u8; 4]>::try_from(b).map_err(|_| MalformedHeaderMap)?;
            usize::try_from(u32::from_le_bytes(b)).map_err(|_| MalformedHeaderMap)
        };
        let count = word(0)?;
        // Each entry takes at least 8 length bytes and 2 NULs.
        if count > bytes.len() / 10 {
            return Err(MalformedHeaderMap);
        }
        let mut data = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .ok_or(MalformedHeaderMap)?;
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let lengths = 4 + i * 8;
            let mut field = |len: usize| -> Result<Range<usize>, MalformedHeaderMap> {
                let start = data;
                let end = start.checked_add(len).ok_or(MalformedHeaderMap)?;
                if bytes.get(end) != Some(&0) {
                    return Err(MalformedHeaderMap);
                }
                data = end + 1;
                Ok(start..end)
            };
            let name = field(word(lengths)?)?;
            let value = field(word(lengths + 4)?)?;
            entries.push((name, value));
        }
        if data != bytes.len() {
            return Err(MalformedHeaderMap);
        }
        Ok(Self { bytes, entries })
    }

    /// Serializes `pairs` the way the proxy does (tests and fakes).
    pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (n, v) in pairs {
            out.extend_from_slice(&(n.as_ref().len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            for part in [n.as_ref(), v.as_ref()] {
                out.extend_from_slice(part);
                out.push(0);
            }
        }
        out
    }

    /// Every entry as (name, value) bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(n, v)| {
            (
                self.bytes.get(n.clone()).unwrap_or_default(),
                self.bytes.get(v.clone()).unwrap_or_default(),
            )
        })
    }

    /// The entries as strings, and the names of those that are not UTF-8.
    pub fn utf8(&self) -> Utf8Headers<'_> {
        let mut out = Utf8Headers {
            valid: Vec::with_capacity(self.entries.len()),
            invalid: Vec::new(),
        };
        for (name, value) in self.iter() {
            match (std::str::from_utf8(name), std::str::from_utf8(value)) {
                (Ok(n), Ok(v)) => out.valid.push((n, v)),
                _ => out.invalid.push(name),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn round_trip() {
        let pairs = [(":path", "/a"), ("x-empty", ""), ("x-b", "1")];
        let map = HeaderMap::parse(HeaderMap::serialize(&pairs)).unwrap();
        let u = map.utf8();
        assert_eq!(u.valid, pairs);
        assert!(u.invalid.is_empty());
        assert_eq!(HeaderMap::parse(Vec::new()).unwrap().utf8().valid, []);
    }

    #[test]
    fn values_that_are_not_utf8_are_reported_not_fatal() {
        let pairs: [(&[u8], &[u8]); 3] = [(b":path", b"/a"), (b"x-latin1", b"caf\xe9"), (b"x-ok", b"1")];
        let map = HeaderMap::parse(HeaderMap::serialize(&pairs)).unwrap();
        let u = map.utf8();
        assert_eq!(u.valid, [(":path", "/a"), ("x-ok", "1")]);
        assert_eq!(u.invalid, [b"x-latin1".as_slice()]);
        assert_eq!(map.iter().nth(1), Some((b"x-latin1".as_slice(), b"caf\xe9".as_slice())));
    }

    #[test]
    fn malformed_buffers_are_errors() {
        let good = HeaderMap::serialize(&[("a", "b"), ("cc", "dd")]);
        // Every truncation, an extra byte, a missing NUL, a count too large.
        for len in 1..good.len() {
            assert_eq!(HeaderMap::parse(good[..len].to_vec()), Err(MalformedHeaderMap), "{len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(HeaderMap::parse(long), Err(MalformedHeaderMap));
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(HeaderMap::parse(no_nul), Err(MalformedHeaderMap));
        let mut huge = good;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::parse(huge), Err(MalformedHeaderMap));
        let mut lengths = HeaderMap::serialize(&[("a", "b")]);
        lengths[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::parse(lengths), Err(MalformedHeaderMap));
    }
}
