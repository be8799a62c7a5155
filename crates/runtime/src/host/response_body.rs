//! `wasi:http/types`: wasmtime-wasi-http's implementation, but for
//! `outgoing-response.body` and `outgoing-body.finish`, which record
//! whether the guest finished the body of its response.
//!
//! wasi:http says a body dropped without `finish` is incomplete, but
//! wasmtime-wasi-http 48 ends it like a finished one: a guest that traps,
//! runs out of time or just drops its body in the middle of a chunked
//! response sends the client the final chunk, and a cut response looks
//! whole. With what is recorded here, [`CheckedBody`] ends such a body
//! with an error instead, so that the host closes the connection without
//! the final chunk and the client sees the response is broken.
//!
//! The functions are defined over wasmtime-wasi-http's own in the linker
//! (a later definition shadows an earlier one) and call them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::FieldMap;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{
    ErrorCode, HostOutgoingBody as _, HostOutgoingResponse as _,
};
use wasmtime_wasi_http::p2::body::{HostOutgoingBody, HyperOutgoingBody};
use wasmtime_wasi_http::p2::types::HostOutgoingResponse;

use crate::guest_log::LogTags;
use crate::state::InstanceState;

/// The interface in the version wasmtime-wasi-http defines its functions
/// under (components importing older 0.2 versions are linked to it).
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// Whether a request's guest took the body of an outgoing response, and
/// whether it finished one. Shared by the store and the response body.
#[derive(Clone)]
pub(crate) struct ResponseBodyState(Arc<Recorded>);

struct Recorded {
    /// The table entries of response bodies the guest took.
    taken: std::sync::Mutex<Vec<u32>>,
    finished: AtomicBool,
    /// Where a cut-off body is logged.
    tags: LogTags,
}

impl ResponseBodyState {
    pub(crate) fn new(tags: LogTags) -> ResponseBodyState {
        ResponseBodyState(Arc::new(Recorded {
            taken: std::sync::Mutex::default(),
            finished: AtomicBool::new(false),
            tags,
        }))
    }

    fn took(&self, rep: u32) {
        self.0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(rep);
    }

    /// Marks the response body at `rep` finished, if it is one; its table
    /// slot is freed by the finish and may next hold another kind of body.
    fn finishing(&self, rep: u32) {
        let mut taken = self
            .0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = taken.iter().position(|taken| *taken == rep) {
            taken.swap_remove(index);
            self.0.finished.store(true, Ordering::Release);
        }
    }

    /// Whether a body that has ended was cut short: the guest took a
    /// response body and finished none. (A guest that builds several
    /// responses and finishes another one than it sends is not told apart;
    /// one response per request is what the world expects.)
    fn cut_short(&self) -> bool {
        let taken = !self
            .0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty();
        taken && !self.0.finished.load(Ordering::Acquire)
    }
}

/// A response body that ends with an error when the guest did not finish
/// it (see the module doc).
pub(crate) struct CheckedBody {
    body: HyperOutgoingBody,
    state: ResponseBodyState,
}

impl CheckedBody {
    pub(crate) fn wrap(body: HyperOutgoingBody, state: ResponseBodyState) -> HyperOutgoingBody {
        CheckedBody { body, state }.boxed_unsync()
    }
}

impl Body for CheckedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) if self.state.cut_short() => {
                let tags = &self.state.0.tags;
                tracing::error!(
                    app = &*tags.app,
                    request_id = &*tags.request_id,
                    kind = "incomplete response",
                    "response cut off: the guest's response body ended without outgoing-body.finish; the connection is closed so that the client sees it incomplete"
                );
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Only polling can tell a finished body from a cut one.
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Replaces the two functions in `linker`, which must already hold
/// wasmtime-wasi-http's interfaces.
pub(crate) fn add_body_check(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    super::shadowing(linker, define)
}

fn define(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    let mut types = linker.instance(HTTP_TYPES)?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |mut store, (response,): (Resource<HostOutgoingResponse>,)| {
            let state = store.data_mut();
            let body = state.http().body(response)?;
            if let Ok(body) = &body {
                state.response_body.took(body.rep());
            }
            Ok((body,))
        },
    )?;
    types.func_wrap(
        "[static]outgoing-body.finish",
        |mut store, (body, trailers): (Resource<HostOutgoingBody>, Option<Resource<FieldMap>>)| {
            let state = store.data_mut();
            // Before wasmtime-wasi-http sends the end of the body, so that
            // the body's reader sees it marked finished.
            state.response_body.finishing(body.rep());
            let finished: Result<(), ErrorCode> = match state.http().finish(body, trailers) {
                Ok(()) => Ok(()),
                Err(error) => Err(error.downcast()?),
            };
            Ok((finished,))
        },
    )?;
    Ok(())
}
