//! Who a request of the management API (or a preview request) is: the
//! bearer token, checked against the catalog's hashes in constant time,
//! and the scope and namespace it carries.
//!
//! The order of the checks, for every door:
//! 1. A client that failed [`MAX_FAILURES`] times within [`WINDOW`] is
//!    refused with `429` until the window ends, whatever it sends.
//! 2. No token: `401`. A token that is malformed, unknown, wrong or
//!    revoked: `401`, all alike, and counted as a failure.
//! 3. A valid token without the scope the call needs, or for another
//!    namespace's app: `403`, not counted (the caller is who it says).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serverless_catalog::{Scope, TokenInfo};

use crate::catalog::Catalog;

/// How many failed authentications a client may make in [`WINDOW`].
pub(crate) const MAX_FAILURES: u32 = 10;

/// The window failures are counted in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The most clients whose failures are remembered; past it the oldest
/// windows are forgotten first.
const MOST_CLIENTS: usize = 10_000;

/// Why a request is not let through, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token was sent.
    Missing,
    /// The token is not a valid one.
    Invalid,
    /// Too many failures from this client.
    RateLimited { retry_after: Duration },
    /// A valid token without the scope.
    Scope { needed: Scope, has: Scope },
    /// A valid token of another namespace.
    Namespace { token: String },
    /// The catalog could not be read.
    Unavailable,
}

impl Denied {
    /// The HTTP status of the refusal.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Denied::Missing | Denied::Invalid => StatusCode::UNAUTHORIZED,
            Denied::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Denied::Scope { .. } | Denied::Namespace { .. } => StatusCode::FORBIDDEN,
            Denied::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told.
    pub(crate) fn message(&self) -> String {
        match self {
            Denied::Missing => "this call needs a token: send `Authorization: Bearer swt_...` (`host login` stores one)".to_owned(),
            Denied::Invalid => "the token is not valid: it is malformed, unknown, wrong or revoked".to_owned(),
            Denied::RateLimited { retry_after } => format!(
                "too many failed authentications from this address; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            Denied::Scope { needed, has } => {
                format!("this call needs scope `{needed}`; the token has `{has}`")
            }
            Denied::Namespace { token } => format!(
                "the token belongs to namespace `{token}` and can reach only its apps"
            ),
            Denied::Unavailable => "the catalog cannot be read now; try again".to_owned(),
        }
    }
}

/// Failed authentications per client address.
#[derive(Default)]
struct Failures {
    by_client: HashMap<IpAddr, (Instant, u32)>,
}

/// Checks tokens and counts failures.
pub(crate) struct Authenticator {
    catalog: Arc<Catalog>,
    failures: Mutex<Failures>,
}

impl Authenticator {
    /// Checks tokens against `catalog`, with a failure count of its own.
    pub(crate) fn new(catalog: Arc<Catalog>) -> Authenticator {
        Authenticator {
            catalog,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// The token `token` (the header's value after `Bearer `) of a
    /// request from `client`, when it is valid and the client is not
    /// locked out.
    pub(crate) async fn authenticate(
        &self,
        token: Option<&str>,
        client: IpAddr,
    ) -> Result<TokenInfo, Denied> {
        if let Some(retry_after) = self.locked_out(client) {
            return Err(Denied::RateLimited { retry_after });
        }
        let Some(token) = token else {
            return Err(Denied::Missing);
        };
        let catalog = self.catalog.clone();
        let token = token.to_owned();
        let verified = tokio::task::spawn_blocking(move || catalog.lock().verify_token(&token))
            .await
            .map_err(|_| Denied::Unavailable)?;
        match verified {
            Ok(Some(info)) => Ok(info),
            Ok(None) => {
                self.fail(client);
                tracing::warn!(%client, "management API: refused an invalid token");
                Err(Denied::Invalid)
            }
            Err(error) => {
                tracing::error!("management API: cannot check a token: {error}");
                Err(Denied::Unavailable)
            }
        }
    }

    /// How long `client` must still wait, when it is locked out.
    fn locked_out(&self, client: IpAddr) -> Option<Duration> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (since, count) = failures.by_client.get(&client)?;
        let elapsed = since.elapsed();
        (*count >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    fn fail(&self, client: IpAddr) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if failures.by_client.len() >= MOST_CLIENTS {
            failures
                .by_client
                .retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        if failures.by_client.len() >= MOST_CLIENTS
            && let Some(oldest) = failures
                .by_client
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(client, _)| *client)
        {
            failures.by_client.remove(&oldest);
        }
        let entry = failures.by_client.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Checks that `token` may act on `namespace` with `needed`.
pub(crate) fn allow(token: &TokenInfo, namespace: &str, needed: Scope) -> Result<(), Denied> {
    if token.namespace != namespace {
        return Err(Denied::Namespace {
            token: token.namespace.clone(),
        });
    }
    if !token.scope.allows(needed) {
        return Err(Denied::Scope {
            needed,
            has: token.scope,
        });
    }
    Ok(())
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serverless_catalog::audit::Actor;

    #[tokio::test]
    async fn failures_lock_a_client_out_for_the_window_and_others_not() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), 3).unwrap();
        let token = catalog
            .lock()
            .create_token("default", Scope::Read, "", &Actor::local())
            .unwrap();
        let auth = Authenticator::new(catalog);
        let client: IpAddr = [127, 0, 0, 2].into();
        let other: IpAddr = [127, 0, 0, 3].into();
        assert_eq!(
            auth.authenticate(None, client).await.unwrap_err(),
            Denied::Missing
        );
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.authenticate(Some("swt_nope"), client)
                    .await
                    .unwrap_err(),
                Denied::Invalid
            );
        }
        assert!(matches!(
            auth.authenticate(Some(&token.secret), client).await,
            Err(Denied::RateLimited { .. })
        ));
        assert!(auth.authenticate(Some(&token.secret), other).await.is_ok());
    }

    #[test]
    fn scope_and_namespace_are_checked_in_that_order_of_meaning() {
        let token = TokenInfo {
            id: "x".into(),
            namespace: "team-a".into(),
            scope: Scope::Deploy,
            description: String::new(),
            created_at: 0,
            revoked_at: None,
        };
        assert!(allow(&token, "team-a", Scope::Read).is_ok());
        assert_eq!(
            allow(&token, "team-a", Scope::Admin).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allow(&token, "team-b", Scope::Read).unwrap_err().message(),
            "the token belongs to namespace `team-a` and can reach only its apps"
        );
    }
}
