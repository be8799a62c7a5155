//! A handler-world request: the guest's `handle` runs in a fresh instance
//! and builds the response through the host's `response` interface. A core
//! module of the serverless-wasm ABI runs the same way, through its `env`
//! functions.

use super::error::lane_failed;
use super::store::{Retiring, instantiate_and_call};
use super::{App, Entry, HandleError};
use crate::bindings::HandlerPre;
use crate::lanes::LongRunning;
use crate::legacy::LegacyPre;
use crate::request::IncomingRequest;
use crate::response::GuestResponse;
use crate::state::{HandlerCall, InstanceState};
use crate::stdio::StderrTail;

/// What a request instantiates and calls.
enum Runs {
    Handler(HandlerPre<InstanceState>),
    Legacy(LegacyPre),
}

impl App {
    /// Runs one handler-world (or legacy) request in a fresh store and
    /// instance and returns what the handler built. `hold` is kept until the instance is
    /// gone and its pool slot free: the caller's admission slot, for
    /// example.
    pub async fn handle(
        &self,
        request: IncomingRequest,
        hold: impl Send + 'static,
    ) -> Result<GuestResponse, HandleError> {
        let entry = match &self.entry {
            Entry::Handler(pre) => Runs::Handler(pre.clone()),
            Entry::Legacy(pre) => Runs::Legacy(pre.clone()),
            Entry::WasiHttp(_) | Entry::Subscriber(_) => {
                return Err(HandleError::WrongWorld(self.kind()));
            }
        };
        let call = HandlerCall {
            request,
            response: GuestResponse::default(),
            max_response_body: self.limits.max_response_body,
            response_too_large: false,
            headers_too_large: false,
        };
        let deadline = crate::limits::deadline_after(self.limits.timeout);
        let timeout = self.limits.timeout;
        let stderr = StderrTail::default();
        let long_running = LongRunning::default();
        let store = self.new_store(
            call.request.request_id.clone(),
            Some(call),
            deadline,
            stderr.clone(),
            long_running.clone(),
        )?;
        let mut retiring = Retiring::new(store, hold);
        let run = async move {
            let limits = (deadline, timeout);
            let (mut stats, outcome) = match entry {
                Runs::Handler(pre) => {
                    instantiate_and_call(
                        &mut retiring,
                        limits,
                        &stderr,
                        async |store| pre.instantiate_async(store).await,
                        async |handler, store| handler.call_handle(store).await,
                    )
                    .await
                }
                Runs::Legacy(pre) => {
                    instantiate_and_call(
                        &mut retiring,
                        limits,
                        &stderr,
                        async |store| pre.instantiate(store).await,
                        async |instance, store| {
                            pre.call(instance, store).await?;
                            crate::legacy::check_declared_length(store.data());
                            Ok(())
                        },
                    )
                    .await
                }
            };
            let state = retiring.data_mut();
            stats.tcp_connections = state.tcp.opened;
            stats.tcp_denied = state.tcp.denied;
            let call = state.call.take();
            (retiring, stats, call, outcome)
        };
        let (retiring, stats, call, outcome) = self
            .slow_lane
            .run(long_running, deadline, run)
            .await
            .map_err(|error| lane_failed(error, timeout))?;
        // Here, on the host's runtime: the slot is reset at normal
        // priority, after the response has gone out.
        drop(retiring);
        outcome?;
        let mut response = match call {
            Some(call) if call.headers_too_large => {
                return Err(HandleError::ResponseHeadersTooLarge);
            }
            Some(call) if call.response_too_large => {
                return Err(HandleError::ResponseTooLarge(call.max_response_body));
            }
            Some(call) => call.response,
            None => GuestResponse::default(),
        };
        response.stats = stats;
        Ok(response)
    }
}
