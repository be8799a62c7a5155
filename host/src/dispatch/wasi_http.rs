//! The wasi:http world's path: the request goes to the guest with its body
//! still streaming and the host's headers set, and the guest's response is
//! held to what may be sent (no informational status, the app's size
//! limit).

use std::sync::Arc;

use http::header::{HOST, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serverless_router::RouteMatch;
use serverless_runtime::{App, BodyError, FailureKind, ResponseBody};

use super::identity::REQUEST_ID_HEADER;
use super::refusal::{Refusal, failed};
use super::{RequestBody, Served, Stats};
use crate::admission::Admitted;
use crate::routes::Target;

/// The route pattern that matched, on the request to a wasi:http
/// component.
pub(super) const ROUTE_HEADER: &str = "x-serverless-route";

/// The route parameters, form-encoded, on the request to a wasi:http
/// component.
pub(super) const PARAMS_HEADER: &str = "x-serverless-params";

/// wasi:http world: hand the request over with its body still streaming,
/// plus the request id, route and parameters in headers that the host sets
/// (a client cannot forge them: its own are removed).
pub(super) async fn run_wasi_http<B: RequestBody>(
    app: &App,
    request: Request<B>,
    found: RouteMatch<'_, Target>,
    request_id: &Arc<str>,
    admitted: Admitted,
) -> Result<Served, Refusal> {
    let limit = app.max_request_body();
    let route: Arc<str> = found.pattern.as_str().into();
    let (mut parts, body) = request.into_parts();
    let headers = &mut parts.headers;
    for name in [REQUEST_ID_HEADER, ROUTE_HEADER, PARAMS_HEADER] {
        headers.remove(name);
    }
    let params = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&found.params)
        .finish();
    for (name, value) in [
        (REQUEST_ID_HEADER, &**request_id),
        (ROUTE_HEADER, &*route),
        (PARAMS_HEADER, params.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if !headers.contains_key(HOST) {
        headers.insert(HOST, HeaderValue::from_static("localhost"));
    }
    let body =
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(move |error| {
            if error.is::<LengthLimitError>() {
                BodyError::HttpRequestBodySize(Some(limit))
            } else {
                match error.downcast::<hyper::Error>() {
                    Ok(error) => BodyError::Hyper(*error),
                    Err(other) => BodyError::InternalError(Some(other.to_string())),
                }
            }
        });
    match app
        .serve_http(
            request_id.clone(),
            Request::from_parts(parts, body),
            admitted,
        )
        .await
    {
        Ok((response, later)) => Ok(Served {
            response: limit_response(app, request_id, response)?,
            app: app.name().clone(),
            route,
            // The body streams to the guest: its size is not known here.
            bytes_in: None,
            stats: Stats::Later(later),
        }),
        Err(error) => Err(failed(app, request_id, &error)),
    }
}

/// Holds a wasi:http response to what may be sent: an informational
/// status (`1xx`) is no final answer, and the host upgrades no connection,
/// so it is refused (`500`) rather than put on the wire as, say, `101
/// Switching Protocols`. And to the app's size limit: a declared length
/// past it is refused before anything is sent (`500`); a streamed body that
/// grows past it is cut off, which the client sees as a broken response.
fn limit_response(
    app: &App,
    request_id: &Arc<str>,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Refusal> {
    if response.status().is_informational() {
        tracing::error!(
            app = &**app.name(),
            request_id = &**request_id,
            kind = "informational status",
            "request failed: the guest answered {}, an informational status, as its final response",
            response.status().as_u16()
        );
        return Err(Refusal::HandlerFailed(FailureKind::InformationalStatus));
    }
    let limit = app.limits().max_response_body;
    let declared = super::declared_length(response.headers());
    if declared.is_some_and(|length| length > limit) {
        tracing::error!(
            app = &**app.name(),
            request_id = &**request_id,
            kind = "response too large",
            "request failed: the response declares more than the app's limit of {limit} bytes"
        );
        return Err(Refusal::HandlerFailed(FailureKind::ResponseTooLarge));
    }
    let (app_name, id) = (app.name().clone(), request_id.clone());
    Ok(response.map(|body| {
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .map_err(move |error| {
                if error.is::<LengthLimitError>() {
                    tracing::error!(
                        app = &*app_name,
                        request_id = &*id,
                        kind = "response too large",
                        "response cut off: the body grew past the app's limit of {limit} bytes"
                    );
                    BodyError::HttpResponseBodySize(Some(limit))
                } else {
                    match error.downcast::<BodyError>() {
                        Ok(error) => *error,
                        Err(other) => BodyError::InternalError(Some(other.to_string())),
                    }
                }
            })
            .boxed_unsync()
    }))
}
