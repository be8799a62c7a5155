//! `/v1/whoami`, `/v1/tokens` and `/v1/namespaces`. An admin token
//! manages its own namespace's tokens; an admin of the operator's
//! `default` namespace manages every namespace's tokens and assigns the
//! route prefixes.

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serverless_catalog::namespaces::DEFAULT_NAMESPACE;
use serverless_catalog::{Scope, TokenInfo};

use super::auth::allow;
use super::reply::{ApiError, json, parse_json, read_body};
use super::{Api, Caller, MAX_JSON};
use crate::admin::AdminBody;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    namespace: Option<String>,
    scope: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetNamespace {
    route_prefix: String,
}

/// A token as answers show it: never its secret.
pub(crate) fn token_json(token: &TokenInfo) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "namespace": token.namespace,
        "scope": token.scope.to_string(),
        "description": token.description,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    })
}

impl Api {
    pub(super) async fn whoami(&self, caller: &Caller) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        let info = self
            .blocking(move |state| Ok(state.namespace(&namespace)?))
            .await?;
        let mut answer = token_json(&caller.token);
        answer["route_prefix"] = info
            .and_then(|info| info.route_prefix)
            .map_or(serde_json::Value::Null, serde_json::Value::String);
        Ok(json(StatusCode::OK, &answer))
    }

    /// The namespace a token call acts on: its own, or with an admin of
    /// `default`, any.
    fn token_namespace(caller: &Caller, wanted: Option<&str>) -> Result<String, ApiError> {
        let own = caller.token.namespace.as_str();
        let wanted = wanted.unwrap_or(own);
        let acting_on = if own == DEFAULT_NAMESPACE {
            own
        } else {
            wanted
        };
        allow(&caller.token, acting_on, Scope::Admin)?;
        Ok(wanted.to_owned())
    }

    pub(super) async fn list_tokens(
        &self,
        caller: &Caller,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = Self::token_namespace(caller, None)?;
        let everyone = namespace == DEFAULT_NAMESPACE;
        let tokens = self
            .blocking(
                move |state| Ok(state.list_tokens((!everyone).then_some(namespace.as_str()))?),
            )
            .await?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>() }),
        ))
    }

    pub(super) async fn create_token(
        &self,
        caller: &Caller,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        let body = read_body(request.into_body(), MAX_JSON).await?;
        let request: CreateToken = parse_json(&body)?;
        let namespace = Self::token_namespace(caller, request.namespace.as_deref())?;
        let scope: Scope = request.scope.parse()?;
        let actor = caller.actor.clone();
        let token = self
            .blocking(move |state| {
                Ok(state.create_token(&namespace, scope, &request.description, &actor)?)
            })
            .await?;
        let mut answer = token_json(&token.info);
        // The only time the secret is answered.
        answer["token"] = serde_json::Value::String(token.secret);
        Ok(json(StatusCode::CREATED, &answer))
    }

    pub(super) async fn revoke_token(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Response<AdminBody>, ApiError> {
        let own = caller.token.namespace.clone();
        allow(&caller.token, &own, Scope::Admin)?;
        let (id, actor) = (id.to_owned(), caller.actor.clone());
        let token = self
            .blocking(move |state| {
                let known = state
                    .token(&id)?
                    .ok_or_else(|| serverless_catalog::CatalogError::UnknownToken(id.clone()))?;
                if own != DEFAULT_NAMESPACE && known.namespace != own {
                    // Another tenant's token is as unknown as a missing one.
                    return Err(serverless_catalog::CatalogError::UnknownToken(id).into());
                }
                Ok(state.revoke_token(&id, &actor)?)
            })
            .await?;
        Ok(json(StatusCode::OK, &token_json(&token)))
    }

    pub(super) async fn list_namespaces(
        &self,
        caller: &Caller,
    ) -> Result<Response<AdminBody>, ApiError> {
        allow(&caller.token, DEFAULT_NAMESPACE, Scope::Admin)?;
        let namespaces = self.blocking(|state| Ok(state.namespaces()?)).await?;
        let list: Vec<serde_json::Value> = namespaces
            .iter()
            .map(|n| serde_json::json!({ "name": n.name, "route_prefix": n.route_prefix }))
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "namespaces": list }),
        ))
    }

    pub(super) async fn set_namespace(
        &self,
        caller: &Caller,
        name: &str,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        allow(&caller.token, DEFAULT_NAMESPACE, Scope::Admin)?;
        let body = read_body(request.into_body(), MAX_JSON).await?;
        let request: SetNamespace = parse_json(&body)?;
        let (name, actor) = (name.to_owned(), caller.actor.clone());
        let info = self
            .blocking(move |state| {
                Ok(state.set_route_prefix(&name, &request.route_prefix, &actor)?)
            })
            .await?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "name": info.name, "route_prefix": info.route_prefix }),
        ))
    }

    /// `GET /v1/audit?limit=N`: the newest records (100 by default), for
    /// an admin of `default`.
    pub(super) async fn audit(
        &self,
        caller: &Caller,
        query: Option<&str>,
    ) -> Result<Response<AdminBody>, ApiError> {
        allow(&caller.token, DEFAULT_NAMESPACE, Scope::Admin)?;
        let limit = match query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit="))) {
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit={text} is not a number from 1 to 10000"))
                })?,
            None => 100,
        };
        let records = self
            .blocking(move |state| Ok(state.audit_log(limit)?))
            .await?;
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "seq": r.seq, "at": r.at, "actor": r.actor, "origin": r.origin,
                    "action": r.action, "target": r.target,
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "records": list }),
        ))
    }
}
