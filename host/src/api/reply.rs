//! The API's answers and request bodies: JSON both ways, errors as
//! `{"error": "..."}` with the status that says what kind they are.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::de::DeserializeOwned;

use crate::admin::AdminBody;

/// A refused or failed call: its status and what the client is told.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    /// A refusal with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A `400`.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A failure of the host itself: the details go to the log, the
    /// client gets a generic message.
    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!("management API: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the host's log has the details",
        )
    }
}

impl From<super::auth::Denied> for ApiError {
    fn from(denied: super::auth::Denied) -> ApiError {
        ApiError::new(denied.status(), denied.message())
    }
}

impl From<serverless_catalog::CatalogError> for ApiError {
    fn from(error: serverless_catalog::CatalogError) -> ApiError {
        use serverless_catalog::CatalogError as E;
        match error {
            E::UnknownApp { .. } | E::UnknownVersion { .. } | E::UnknownToken(_) => {
                ApiError::new(StatusCode::NOT_FOUND, error.to_string())
            }
            E::Invalid(message) => ApiError::bad_request(message),
            E::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
            E::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            E::Directory { ref error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "the component is not stored (any more); upload it again with PUT /v1/components",
                )
            }
            E::Corrupt { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
            error => ApiError::internal(error),
        }
    }
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<AdminBody> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{value}\n"))).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error's answer.
pub(crate) fn error(error: &ApiError) -> Response<AdminBody> {
    let mut response = json(error.status, &serde_json::json!({ "error": error.message }));
    if error.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"serverless-wasm\""),
        );
    }
    response
}

/// How long a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The whole body, at most `limit` bytes (`413` past it).
pub(crate) async fn read_body<B>(body: B, limit: u64) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit_usize).collect())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than this call's limit of {limit} bytes"),
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

/// The body as JSON of type `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the request body: {error}")))
}
