//! Who may change an Allowlist through the API: the caller's Kubernetes
//! bearer token, checked with a TokenReview, and a SubjectAccessReview asking
//! whether that user may `patch` that Allowlist. The API server decides, with
//! the cluster's own RBAC; the service grants nothing of its own.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use thiserror::Error;

/// Why a mutating call was refused.
#[derive(Debug, Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("a Kubernetes bearer token is required (Authorization: Bearer <token>)")]
    MissingToken,
    /// The TokenReview did not authenticate the token.
    #[error("the bearer token was not authenticated by the API server")]
    Unauthenticated,
    /// The SubjectAccessReview denied the request.
    #[error("{user} may not patch allowlists.meshward.io {namespace}/{name}")]
    Forbidden {
        /// The authenticated user.
        user: String,
        /// The Allowlist's namespace.
        namespace: String,
        /// The Allowlist's name.
        name: String,
    },
    /// The reviews could not be made.
    #[error("authorization check failed: {0}")]
    Review(#[from] kube::Error),
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

/// Authenticates `token` and checks that its user may `patch` the Allowlist
/// `namespace/name`. Returns the user name.
pub async fn may_patch_allowlist(
    client: &Client,
    token: &str,
    namespace: &str,
    name: &str,
) -> Result<String, AuthError> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = reviewed.status.unwrap_or_default();
    let user = match (status.authenticated, status.user) {
        (Some(true), Some(user)) => user,
        _ => return Err(AuthError::Unauthenticated),
    };
    let username = user.username.clone().unwrap_or_default();
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("patch".into()),
                group: Some("meshward.io".into()),
                resource: Some("allowlists".into()),
                name: Some(name.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let decided = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await?;
    if decided.status.is_some_and(|s| s.allowed) {
        Ok(username)
    } else {
        Err(AuthError::Forbidden {
            user: username,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
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
}
