//! One HTTP request: give it an id, route it, read its body within the
//! app's limit, run the app, and turn the outcome into a response.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serverless_config::RouteTable;
use serverless_router::Lookup;
use serverless_runtime::{App, GuestResponse, IncomingRequest};

/// The header that carries the request id on every response.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Routes requests to apps.
pub(crate) struct Dispatcher {
    routes: RouteTable<Arc<App>>,
}

/// What went wrong before or around the handler, with the status the client
/// gets. The body is short and generic; details go to the log.
enum Refusal {
    NotFound,
    MethodNotAllowed(String),
    BadPath,
    TooLarge,
    BodyRead,
    HandlerFailed,
}

impl Refusal {
    fn into_response(self) -> Response<Full<Bytes>> {
        let (status, body) = match &self {
            Refusal::NotFound => (StatusCode::NOT_FOUND, "not found\n"),
            Refusal::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            Refusal::BadPath => (
                StatusCode::BAD_REQUEST,
                "bad request: the path is not valid percent-encoded UTF-8\n",
            ),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            Refusal::BodyRead => (
                StatusCode::BAD_REQUEST,
                "bad request: the body could not be read\n",
            ),
            Refusal::HandlerFailed => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Refusal::MethodNotAllowed(allow) = self
            && let Ok(value) = HeaderValue::from_str(&allow)
        {
            response.headers_mut().insert(ALLOW, value);
        }
        response
    }
}

impl Dispatcher {
    pub(crate) fn new(routes: RouteTable<Arc<App>>) -> Dispatcher {
        Dispatcher { routes }
    }

    /// Answers one request. Never fails: every problem becomes a response.
    pub(crate) async fn dispatch(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let (mut response, app) = match self.route_and_run(request, &request_id).await {
            Ok((response, app)) => (response, Some(app)),
            Err((refusal, app)) => (refusal.into_response(), app),
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        tracing::info!(
            target: "access",
            request_id = &*request_id,
            app = app.as_deref().unwrap_or("-"),
            method = method.as_str(),
            path,
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        response
    }

    async fn route_and_run(
        &self,
        request: Request<Incoming>,
        request_id: &Arc<str>,
    ) -> Result<(Response<Full<Bytes>>, Arc<str>), (Refusal, Option<Arc<str>>)> {
        let found = match self
            .routes
            .lookup(request.method().as_str(), request.uri().path())
        {
            Lookup::Found(found) => found,
            Lookup::NotFound => return Err((Refusal::NotFound, None)),
            Lookup::MethodNotAllowed(allowed) => {
                return Err((Refusal::MethodNotAllowed(allowed.to_allow_header()), None));
            }
            Lookup::BadPath => return Err((Refusal::BadPath, None)),
        };
        let app = found.value.clone();
        let name = app.name().clone();
        let refuse = |refusal| (refusal, Some(name.clone()));

        let (parts, body) = request.into_parts();
        let limit = app.max_request_body();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            tracing::info!(
                app = &*name,
                request_id = &**request_id,
                limit,
                "request body is larger than the app's limit"
            );
            refuse(Refusal::TooLarge)
        };
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let body = match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
            Err(error) => {
                tracing::info!(
                    app = &*name,
                    request_id = &**request_id,
                    "cannot read the request body: {error}"
                );
                return Err(refuse(Refusal::BodyRead));
            }
        };

        let incoming = IncomingRequest {
            request_id: request_id.clone(),
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers,
            body,
            route: found.pattern.as_str().into(),
            params: found.params,
        };
        match app.handle(incoming).await {
            Ok(guest) => Ok((into_http(guest), name)),
            Err(error) => {
                tracing::error!(
                    app = &*name,
                    request_id = &**request_id,
                    "request failed: {error}"
                );
                Err(refuse(Refusal::HandlerFailed))
            }
        }
    }
}

/// Builds the HTTP response from what the handler set.
fn into_http(guest: GuestResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(guest.body)));
    *response.status_mut() = guest.status;
    *response.headers_mut() = guest.headers;
    if let Some(reason) = guest.reason
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(reason);
    }
    response
}
