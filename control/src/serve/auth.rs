//! Who may call the API: every `/v1` call carries a Kubernetes bearer token,
//! authenticated with a TokenReview for the service's audience, and is
//! authorized with a SubjectAccessReview as the Kubernetes API would
//! authorize the same access to Allowlists: reading a namespace's
//! configuration or simulating a request to it needs `get` on `allowlists`
//! there, changing an Allowlist's mode needs `patch` on that Allowlist, and
//! reading a namespace's sidecar logs on the caller's behalf (learn, replay)
//! needs `get` on `pods/log` there too. The
//! API server decides, with the cluster's own RBAC; the service grants
//! nothing of its own.
//!
//! Answers are cached briefly ([`CACHE_TTL`]) so that a burst of calls costs
//! a review or two, not one per call; tokens are cached by their SHA-256,
//! never kept in the clear. When the API server cannot be reached, an answer
//! up to [`STALE_LIMIT`] old is used instead of failing the call: during an
//! outage the service goes on answering those who were authorized shortly
//! before, and nobody else.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// How long a TokenReview or SubjectAccessReview answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// How old a cached answer may be when the API server cannot answer anew.
pub const STALE_LIMIT: Duration = Duration::from_secs(300);
/// At most this many answers of each kind are cached.
const CACHE_ENTRIES: usize = 4_096;

/// Why a call was refused.
#[derive(Debug, Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("a Kubernetes bearer token is required (Authorization: Bearer <token>)")]
    MissingToken,
    /// The TokenReview did not authenticate the token for this service's audience.
    #[error("the bearer token was not authenticated for audience {audience:?}")]
    Unauthenticated {
        /// The audience the token must be valid for.
        audience: String,
    },
    /// The SubjectAccessReview denied the access.
    #[error("{user} may not {access}")]
    Forbidden {
        /// The authenticated user.
        user: String,
        /// What was asked.
        access: Box<Access>,
    },
    /// The reviews could not be made.
    #[error("authorization check failed: {0}")]
    Review(#[from] kube::Error),
}

/// An access to a resource, as a SubjectAccessReview asks about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// `get` or `patch`.
    pub verb: &'static str,
    /// The API group (`meshward.io`; `""` is the core group).
    pub group: &'static str,
    /// The resource (`allowlists`, `pods`).
    pub resource: &'static str,
    /// The subresource (`log`), if any.
    pub subresource: Option<&'static str>,
    /// The namespace.
    pub namespace: String,
    /// One Allowlist, or all of the namespace's.
    pub name: Option<String>,
}

impl Access {
    /// `get` on the Allowlists of `namespace`.
    pub fn read(namespace: &str) -> Self {
        Self {
            verb: "get",
            group: "meshward.io",
            resource: "allowlists",
            subresource: None,
            namespace: namespace.to_string(),
            name: None,
        }
    }

    /// `patch` on Allowlist `namespace/name`.
    pub fn patch(namespace: &str, name: &str) -> Self {
        Self {
            verb: "patch",
            name: Some(name.to_string()),
            ..Self::read(namespace)
        }
    }

    /// `get` on `pods/log` in `namespace`: reading its pods' logs, as
    /// `kubectl logs` needs.
    pub fn read_logs(namespace: &str) -> Self {
        Self {
            verb: "get",
            group: "",
            resource: "pods",
            subresource: Some("log"),
            namespace: namespace.to_string(),
            name: None,
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        match &self.name {
            Some(name) => write!(f, " {}/{name}", self.namespace),
            None => write!(f, " in namespace {}", self.namespace),
        }
    }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::MissingToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// Answers kept for [`CACHE_TTL`].
#[derive(Debug)]
struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.get_within(key, CACHE_TTL)
    }

    fn get_within(&self, key: &K, age: Duration) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(key)?;
        (at.elapsed() < age).then(|| value.clone())
    }

    fn put(&self, key: K, value: V) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < STALE_LIMIT);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Whether a review failed because the API server could not answer (down,
/// overloaded, unreachable), not because it refused.
fn unreachable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        _ => true,
    }
}

/// Authenticates and authorizes API calls.
pub struct Authorizer {
    client: Client,
    audience: String,
    /// SHA-256 of a token → its user (`None`: not authenticated).
    tokens: Cache<[u8; 32], Option<UserInfo>>,
    /// (user, access) → allowed.
    decisions: Cache<(String, Access), bool>,
}

impl Authorizer {
    /// An authorizer asking the API server behind `client`; tokens must be
    /// valid for `audience`.
    pub fn new(client: Client, audience: String) -> Self {
        Self {
            client,
            audience,
            tokens: Cache::new(),
            decisions: Cache::new(),
        }
    }

    /// The user the `Authorization` header's token belongs to.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<UserInfo, AuthError> {
        let token = bearer(header)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let user = match self.tokens.get(&digest) {
            Some(user) => user,
            None => match self.review_token(token).await {
                Ok(user) => {
                    self.tokens.put(digest, user.clone());
                    user
                }
                Err(e) => match self.tokens.get_within(&digest, STALE_LIMIT) {
                    Some(user) if unreachable(&e) => user,
                    _ => return Err(e.into()),
                },
            },
        };
        user.ok_or_else(|| AuthError::Unauthenticated {
            audience: self.audience.clone(),
        })
    }

    /// Checks that `user` may make `access`; returns the user's name.
    pub async fn authorize(&self, user: &UserInfo, access: Access) -> Result<String, AuthError> {
        let name = user.username.clone().unwrap_or_default();
        let key = (name.clone(), access.clone());
        let allowed = match self.decisions.get(&key) {
            Some(allowed) => allowed,
            None => match self.review_access(user, &access).await {
                Ok(allowed) => {
                    self.decisions.put(key, allowed);
                    allowed
                }
                Err(e) => match self.decisions.get_within(&key, STALE_LIMIT) {
                    Some(allowed) if unreachable(&e) => allowed,
                    _ => return Err(e.into()),
                },
            },
        };
        if allowed {
            Ok(name)
        } else {
            Err(AuthError::Forbidden {
                user: name,
                access: Box::new(access),
            })
        }
    }

    async fn review_token(&self, token: &str) -> Result<Option<UserInfo>, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        // The API server says which of the asked audiences the token is
        // valid for; a token for another service is refused even by an
        // authenticator that ignores audiences in its answer.
        let audience_ok = status.audiences.as_ref().is_some_and(|a| a.contains(&self.audience));
        Ok(match (status.authenticated, status.user) {
            (Some(true), Some(user)) if audience_ok => Some(user),
            _ => None,
        })
    }

    async fn review_access(&self, user: &UserInfo, access: &Access) -> Result<bool, kube::Error> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(access.namespace.clone()),
                    verb: Some(access.verb.into()),
                    group: Some(access.group.into()),
                    resource: Some(access.resource.into()),
                    subresource: access.subresource.map(Into::into),
                    name: access.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(decided.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
            Some("abc"),
        ] {
            assert!(matches!(bearer(bad), Err(AuthError::MissingToken)), "{bad:?}");
        }
    }

    #[test]
    fn accesses_read_as_rbac_would_say_them() {
        assert_eq!(
            Access::read("shop").to_string(),
            "get allowlists.meshward.io in namespace shop"
        );
        assert_eq!(
            Access::patch("shop", "api").to_string(),
            "patch allowlists.meshward.io shop/api"
        );
        assert_eq!(Access::read_logs("shop").to_string(), "get pods/log in namespace shop");
    }

    #[test]
    fn the_cache_forgets_when_full() {
        let c: Cache<usize, bool> = Cache::new();
        for i in 0..CACHE_ENTRIES + 10 {
            c.put(i, true);
        }
        assert!(c.entries.lock().unwrap().len() <= CACHE_ENTRIES);
        assert_eq!(c.get(&(CACHE_ENTRIES + 9)), Some(true));
    }
}
