//! A `wasi:http/incoming-handler` request: the response is returned as
//! soon as the guest sets it, and the guest keeps running on a task of its
//! own while it streams the body.

use std::sync::Arc;

use tracing::Instrument as _;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::error::lane_failed;
use super::store::{Retiring, instantiate_and_call};
use super::{App, Entry, HandleError};
use crate::guest_log::Secrets;
use crate::host::response_body::CheckedBody;
use crate::lanes::LongRunning;
use crate::response::InvocationStats;
use crate::stdio::StderrTail;

/// What a wasi:http invocation cost, known once the guest has finished
/// writing its body, after the response has started.
pub struct LaterStats(tokio::sync::oneshot::Receiver<InvocationStats>);

impl LaterStats {
    /// Waits for the guest to finish; `None` if it never reported (the
    /// task was cancelled).
    pub async fn wait(self) -> Option<InvocationStats> {
        self.0.await.ok()
    }
}

/// Where a wasi:http guest's failure goes once nobody waits for it (the
/// guest has set its response, a normal one or an error code, or its client
/// has left): the server log, tagged and redacted like the app's other
/// lines.
#[derive(Clone)]
struct LateFailure {
    app: Arc<str>,
    request_id: Arc<str>,
    secrets: Arc<Secrets>,
}

impl LateFailure {
    fn log(&self, error: &HandleError) {
        let message = self.secrets.redact(&error.to_string()).into_owned();
        tracing::error!(
            app = &*self.app,
            request_id = &*self.request_id,
            kind = error.kind().as_str(),
            "request failed after the guest set its response or its client left: {message}"
        );
    }
}

impl App {
    /// Runs one request through a `wasi:http` component. Both bodies
    /// stream: the response is returned as soon as the guest sets it, and
    /// the guest keeps running on its own task while it writes the body.
    /// `hold` is kept until the guest has finished, body included: the
    /// caller's admission slot, for example.
    pub async fn serve_http<B>(
        &self,
        request_id: Arc<str>,
        request: hyper::Request<B>,
        hold: impl Send + 'static,
    ) -> Result<(hyper::Response<HyperOutgoingBody>, LaterStats), HandleError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Entry::WasiHttp(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.kind()));
        };
        let deadline = crate::limits::deadline_after(self.limits.timeout);
        let timeout = self.limits.timeout;
        let stderr = StderrTail::default();
        let long_running = LongRunning::default();
        let mut store = self.new_store(
            request_id.clone(),
            None,
            deadline,
            stderr.clone(),
            long_running.clone(),
        )?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(HandleError::Instantiate)?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(HandleError::Instantiate)?;
        let response_body = store.data().response_body.clone();
        let mut retiring = Retiring::new(store, hold);
        let pre = pre.clone();
        let (stats_sender, stats) = tokio::sync::oneshot::channel();
        let slow_lane = self.slow_lane.clone();
        let run = async move {
            let (stats, outcome) = instantiate_and_call(
                &mut retiring,
                (deadline, timeout),
                &stderr,
                async |store| pre.instantiate_async(store).await,
                async |proxy, store| {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(store, incoming, outparam)
                        .await
                },
            )
            .await;
            (retiring, stats, outcome)
        };
        // How the guest's task reports a failure: to this function while it
        // waits for the guest's answer, or, once the guest has answered (a
        // response or an error code) or the client has left and nobody
        // listens, to the log by the task itself. One task per request,
        // with no second one watching it.
        let (failure_sender, mut failure) = tokio::sync::oneshot::channel::<HandleError>();
        let late = LateFailure {
            app: self.name.clone(),
            request_id,
            secrets: self.secrets.clone(),
        };
        let late_in_task = late.clone();
        let guest = async move {
            let outcome = match slow_lane.run(long_running, deadline, run).await {
                Ok((retiring, stats, outcome)) => {
                    // On the host's runtime; the hold goes once the slot is
                    // free.
                    drop(retiring);
                    // Nobody waiting (the request failed before its
                    // response) is fine.
                    let _ = stats_sender.send(stats);
                    outcome
                }
                Err(error) => Err(lane_failed(error, timeout)),
            };
            if let Err(error) = outcome
                && let Err(error) = failure_sender.send(error)
            {
                late_in_task.log(&error);
            }
        };
        // The guest's lines belong to the caller's span (the host keys its
        // per-invocation log record by it).
        let task = tokio::spawn(guest.in_current_span());
        match receiver.await {
            Ok(answer) => {
                // The guest has set its response, a normal one or an error
                // code, and may still fail: while it streams the body, say
                // (the client then sees the connection cut). Nobody waits
                // for that failure, so the log says why: after `close` the
                // task logs it itself, and one it reported before is logged
                // here.
                failure.close();
                if let Ok(error) = failure.try_recv() {
                    late.log(&error);
                }
                match answer {
                    Ok(response) => Ok((
                        response.map(|body| CheckedBody::wrap(body, response_body)),
                        LaterStats(stats),
                    )),
                    Err(code) => Err(HandleError::ErrorCode(code)),
                }
            }
            // The guest's task has ended without setting a response.
            Err(_) => match task.await {
                Ok(()) => Err(failure.try_recv().unwrap_or(HandleError::NoResponse)),
                Err(join) => Err(HandleError::Instantiate(wasmtime::Error::msg(format!(
                    "the request task failed: {join}"
                )))),
            },
        }
    }
}
