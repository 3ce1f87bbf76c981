//! JSON Web Tokens for end-to-end tests: an [`Issuer`] that signs tokens
//! (ES256, with `ring`, which the lockfile already has through rustls and
//! rcgen) and publishes its key as a JWKS, and [`jwt_authn_filter`], Envoy's
//! `jwt_authn` filter configured as istiod configures it for a
//! `RequestAuthentication` (`pilot/pkg/security/authn/policy_applier.go`):
//!
//! * one provider per `jwtRules` entry, named `origins-<i>` in issuer order;
//! * `payload_in_metadata: "payload"`: the verified payload lands in the
//!   dynamic metadata namespace `envoy.filters.http.jwt_authn` under key
//!   `payload`, which is what Istio's RBAC (and meshward's filter) read;
//! * `normalize_payload_in_metadata` splitting `scope` and `permission`;
//! * `forward` false (`forwardOriginalToken` unset);
//! * the requirement `{provider OR allow_missing}`: a request without a
//!   token passes with no payload, a request with an invalid, expired or
//!   unknown-key token gets 401 from `jwt_authn` itself. With several
//!   providers, the OR of every provider and of the AND of those pairs.
//!
//! The JWKS is inline (`local_jwks`), as istiod writes it after fetching a
//! `jwksUri` itself.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A token issuer: an `iss` value and a P-256 signing key.
#[derive(Debug)]
pub struct Issuer {
    /// The `iss` claim it signs.
    pub iss: String,
    /// The `audiences` of its `jwtRules` entry; empty = any audience.
    pub audiences: Vec<String>,
    kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Issuer {
    /// A new issuer with a fresh key.
    pub fn new(iss: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("load key");
        Self {
            iss: iss.to_string(),
            audiences: Vec::new(),
            kid: format!("key-{}", crate::scenario::next_serial()),
            key,
            rng,
        }
    }

    /// Sets the audiences `jwt_authn` accepts from this issuer (a
    /// `jwtRules` entry's `audiences`).
    pub fn audiences(mut self, audiences: &[&str]) -> Self {
        self.audiences = audiences.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The public key as a JWKS document (one EC key).
    pub fn jwks(&self) -> String {
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = self.key.public_key().as_ref();
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": base64url(&point[1..33]), "y": base64url(&point[33..65]),
        }]})
        .to_string()
    }

    /// A token whose payload is `claims` plus `iss` and, unless `claims`
    /// sets them, `exp` an hour from now.
    pub fn sign(&self, claims: serde_json::Value) -> String {
        let mut payload = serde_json::json!({"iss": self.iss, "exp": now() + 3600});
        if let (Some(p), serde_json::Value::Object(c)) = (payload.as_object_mut(), claims) {
            p.extend(c);
        }
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(payload.to_string().as_bytes())
        );
        let signature = self.key.sign(&self.rng, signing_input.as_bytes()).expect("sign");
        format!("{signing_input}.{}", base64url(signature.as_ref()))
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Base64url without padding (RFC 7515).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Envoy's `jwt_authn` HTTP filter (JSON, for the harness's filter chain) as
/// istiod writes it for a `RequestAuthentication` whose `jwtRules` trust
/// `issuers` (see the module documentation).
pub fn jwt_authn_filter(issuers: &[&Issuer]) -> String {
    let mut sorted: Vec<&Issuer> = issuers.to_vec();
    sorted.sort_by(|a, b| a.iss.cmp(&b.iss));
    let mut providers = serde_json::Map::new();
    let mut pairs = Vec::new();
    let mut any = Vec::new();
    for (i, issuer) in sorted.iter().enumerate() {
        let name = format!("origins-{i}");
        providers.insert(
            name.clone(),
            serde_json::json!({
                "issuer": issuer.iss,
                "audiences": issuer.audiences,
                "local_jwks": {"inline_string": issuer.jwks()},
                "forward": false,
                "payload_in_metadata": "payload",
                "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
            }),
        );
        pairs.push(serde_json::json!({"requires_any": {"requirements": [
            {"provider_name": name}, {"allow_missing": {}}]}}));
        any.push(serde_json::json!({"provider_name": name}));
    }
    let requires = if pairs.len() == 1 {
        pairs.remove(0)
    } else {
        any.push(serde_json::json!({"requires_all": {"requirements": pairs}}));
        serde_json::json!({"requires_any": {"requirements": any}})
    };
    serde_json::json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": providers,
        "rules": [{"match": {"prefix": "/"}, "requires": requires}],
        "bypass_cors_preflight": true,
    }})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let enc = |s: &str| base64url(s.as_bytes());
        assert_eq!(
            [
                enc(""),
                enc("f"),
                enc("fo"),
                enc("foo"),
                enc("foob"),
                enc("fooba"),
                enc("foobar")
            ],
            ["", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"]
        );
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
