//! API tokens. A token is `swt_ID_SECRET`: a public id (12 hex digits), by
//! which it is listed, revoked and named in the audit log, and a secret of
//! 32 random bytes (64 hex digits), which is shown once, when the token is
//! made, and stored only as its SHA-256. Checking a token looks it up by
//! id and compares the hashes in constant time.
//!
//! Each token belongs to one namespace (a tenant) and carries scopes:
//! `read` sees, `deploy` also changes the namespace's apps, `admin` also
//! manages tokens and namespaces.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::audit::{Actor, record};
use crate::state::now;
use crate::text::{check_name, hex};
use crate::{CatalogError, StateDir};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// See the namespace's apps, versions and logs.
    Read,
    /// Also deploy, promote, roll back and delete them.
    Deploy,
    /// Also manage tokens and namespaces.
    Admin,
}

impl Scope {
    /// Whether a token with this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        })
    }
}

impl FromStr for Scope {
    type Err = CatalogError;

    fn from_str(text: &str) -> Result<Scope, CatalogError> {
        match text {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            _ => Err(CatalogError::Invalid(format!(
                "unknown scope `{text}`; use read, deploy or admin"
            ))),
        }
    }
}

/// What the catalog knows of a token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its public id.
    pub id: String,
    /// The namespace it belongs to.
    pub namespace: String,
    /// Its scope.
    pub scope: Scope,
    /// What it is for, as its maker said.
    pub description: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A token just made: the only time its secret is known.
#[derive(Clone)]
pub struct Token {
    /// What the catalog keeps of it.
    pub info: TokenInfo,
    /// The whole token, `swt_ID_SECRET`, to give to its user.
    pub secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("info", &self.info)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The prefix of every token, so that a leaked one can be found by
/// secret scanners.
const PREFIX: &str = "swt_";

/// Checks a namespace name: letters, digits, `.`, `_` and `-`.
pub fn check_namespace(name: &str) -> Result<(), CatalogError> {
    check_name("namespace", name)
}

/// `count` random bytes from the operating system.
fn random(count: usize) -> Result<Vec<u8>, CatalogError> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes).map_err(|error| CatalogError::Random(error.to_string()))?;
    Ok(bytes)
}

/// The hash a secret is stored as.
fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A token's id and secret, when `token` has the token's form.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |text: &str, length: usize| {
        text.len() == length && text.bytes().all(|b| b.is_ascii_hexdigit())
    };
    (hex_of(id, 12) && hex_of(secret, 64)).then_some((id, secret))
}

impl StateDir {
    /// Makes a token for `namespace` (created when new) with `scope`; the
    /// returned secret is not kept anywhere.
    pub fn create_token(
        &mut self,
        namespace: &str,
        scope: Scope,
        description: &str,
        actor: &Actor,
    ) -> Result<Token, CatalogError> {
        check_namespace(namespace)?;
        let id = hex(&random(6)?);
        let secret = hex(&random(32)?);
        let created_at = now();
        let db = self.db_error_fn();
        self.write(|transaction| {
            transaction
                .execute(
                    "INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?1, ?2)",
                    rusqlite::params![namespace, created_at],
                )
                .map_err(&db)?;
            transaction
                .execute(
                    "INSERT INTO tokens (id, namespace, scopes, hash, description, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        id,
                        namespace,
                        scope.to_string(),
                        hash(&secret),
                        description,
                        created_at
                    ],
                )
                .map_err(&db)?;
            record(transaction, actor, "token.create", &id).map_err(&db)
        })?;
        Ok(Token {
            secret: format!("{PREFIX}{id}_{secret}"),
            info: TokenInfo {
                id,
                namespace: namespace.to_owned(),
                scope,
                description: description.to_owned(),
                created_at,
                revoked_at: None,
            },
        })
    }

    /// Every token, or a namespace's, oldest first.
    pub fn list_tokens(&self, namespace: Option<&str>) -> Result<Vec<TokenInfo>, CatalogError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, namespace, scopes, description, created_at, revoked_at FROM tokens
                 WHERE ?1 IS NULL OR namespace = ?1 ORDER BY rowid",
            )
            .map_err(|error| self.db_error(error))?;
        let rows = statement
            .query_map([namespace], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(|error| self.db_error(error))?;
        rows.map(|row| {
            let (id, namespace, scope, description, created_at, revoked_at) =
                row.map_err(|error| self.db_error(error))?;
            Ok(TokenInfo {
                scope: scope.parse()?,
                id,
                namespace,
                description,
                created_at,
                revoked_at,
            })
        })
        .collect()
    }

    /// Revokes the token with `id`: it is refused from now on, and kept
    /// in the list as revoked.
    pub fn revoke_token(&mut self, id: &str, actor: &Actor) -> Result<TokenInfo, CatalogError> {
        let revoked_at = now();
        let db = self.db_error_fn();
        self.write(|transaction| {
            let changed = transaction
                .execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    rusqlite::params![id, revoked_at],
                )
                .map_err(&db)?;
            // A token revoked before stays as it was, with no new record.
            if changed == 1 {
                record(transaction, actor, "token.revoke", id).map_err(&db)?;
            }
            Ok(())
        })?;
        self.token(id)?
            .ok_or_else(|| CatalogError::UnknownToken(id.to_owned()))
    }

    /// The token `token` is, when it is one of the catalog's and not
    /// revoked. Anything else (a malformed text, an unknown id, a wrong
    /// secret, a revoked token) is `None`, alike.
    pub fn verify_token(&self, token: &str) -> Result<Option<TokenInfo>, CatalogError> {
        let Some((id, secret)) = parse(token) else {
            return Ok(None);
        };
        let stored: Option<Vec<u8>> = self
            .connection
            .query_row(
                "SELECT hash FROM tokens WHERE id = ?1 AND revoked_at IS NULL",
                [id],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(|error| match error {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                error => Err(self.db_error(error)),
            })?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        if !bool::from(stored.as_slice().ct_eq(&hash(secret))) {
            return Ok(None);
        }
        self.token(id)
    }

    /// The token with `id`, revoked or not.
    pub fn token(&self, id: &str) -> Result<Option<TokenInfo>, CatalogError> {
        let row = self
            .connection
            .query_row(
                "SELECT namespace, scopes, description, created_at, revoked_at FROM tokens WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                    ))
                },
            )
            .map(Some)
            .or_else(|error| match error {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                error => Err(self.db_error(error)),
            })?;
        let Some((namespace, scope, description, created_at, revoked_at)) = row else {
            return Ok(None);
        };
        Ok(Some(TokenInfo {
            id: id.to_owned(),
            scope: scope.parse()?,
            namespace,
            description,
            created_at,
            revoked_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        (dir, state)
    }

    #[test]
    fn a_token_is_shown_once_stored_as_a_hash_and_checked() {
        let (dir, mut state) = state();
        let actor = Actor::local();
        let token = state
            .create_token("default", Scope::Admin, "bootstrap", &actor)
            .unwrap();
        assert!(parse(&token.secret).is_some(), "{}", token.secret);
        assert_eq!(
            state.verify_token(&token.secret).unwrap(),
            Some(token.info.clone())
        );
        // The secret is nowhere in the catalog's files.
        let secret = token.secret.rsplit('_').next().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is stored in plain"
            );
        }
        assert!(!format!("{token:?}").contains(secret));
        // Reopened, it still checks.
        drop(state);
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(
            state.verify_token(&token.secret).unwrap().map(|t| t.id),
            Some(token.info.id)
        );
    }

    #[test]
    fn wrong_malformed_and_revoked_tokens_are_refused_alike() {
        let (_dir, mut state) = state();
        let actor = Actor::local();
        let token = state
            .create_token("team-a", Scope::Deploy, "ci", &actor)
            .unwrap();
        let (id, secret) = parse(&token.secret).unwrap();
        let mut wrong = secret.to_owned();
        wrong.replace_range(0..1, if &secret[..1] == "0" { "1" } else { "0" });
        for bad in [
            format!("swt_{id}_{wrong}"),
            format!("swt_000000000000_{secret}"),
            format!("{id}_{secret}"),
            "swt_".to_owned(),
            String::new(),
        ] {
            assert_eq!(state.verify_token(&bad).unwrap(), None, "{bad}");
        }
        let revoked = state.revoke_token(id, &actor).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(state.verify_token(&token.secret).unwrap(), None);
        // Revoking again changes nothing and writes no second record.
        state.revoke_token(id, &actor).unwrap();
        let actions: Vec<String> = state
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {}", r.action, r.target))
            .collect();
        assert_eq!(
            actions,
            [format!("token.create {id}"), format!("token.revoke {id}")]
        );
        let error = state.revoke_token("ffffffffffff", &actor).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no token has the id `ffffffffffff`; `host tokens list` shows them"
        );
    }

    #[test]
    fn tokens_list_by_namespace_without_secrets() {
        let (_dir, mut state) = state();
        let actor = Actor::local();
        let a = state.create_token("a", Scope::Read, "", &actor).unwrap();
        let b = state.create_token("b", Scope::Admin, "", &actor).unwrap();
        let ids = |namespace| -> Vec<String> {
            state
                .list_tokens(namespace)
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect()
        };
        assert_eq!(ids(Some("a")), std::slice::from_ref(&a.info.id));
        assert_eq!(ids(Some("b")), std::slice::from_ref(&b.info.id));
        assert_eq!(ids(None).len(), 2);
    }

    #[test]
    fn names_and_scopes_are_checked() {
        let (_dir, mut state) = state();
        let error = state
            .create_token("no spaces", Scope::Read, "", &Actor::local())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "namespace `no spaces` is not a name: use 1 to 64 letters, digits, `.`, `_` or `-`"
        );
        assert_eq!(
            "root".parse::<Scope>().unwrap_err().to_string(),
            "unknown scope `root`; use read, deploy or admin"
        );
        assert!(Scope::Admin.allows(Scope::Deploy));
        assert!(Scope::Deploy.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Deploy));
    }
}
