//! One message for a subscription handler: the guest's
//! `wasi:messaging/incoming-handler.handle` runs in a fresh instance with
//! the message as its own resource, under the app's limits and deadline.
//! A trap, a deadline or an `error` it returns is a failed delivery; what
//! comes next (a retry, the dead-letter topic, a drop) is the host's
//! subscription runner's to decide.

use std::sync::Arc;

use serverless_messaging::Message;

use super::error::lane_failed;
use super::store::{Retiring, instantiate_and_call};
use super::{App, Entry, HandleError};
use crate::host::messaging::GuestMessage;
use crate::lanes::LongRunning;
use crate::response::InvocationStats;
use crate::stdio::StderrTail;

impl App {
    /// Delivers `message` to a fresh instance. `delivery_id` tags the
    /// guest's log lines, as a request id does.
    pub async fn deliver(
        &self,
        delivery_id: Arc<str>,
        message: &Message,
    ) -> Result<InvocationStats, HandleError> {
        let Entry::Subscriber(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.kind()));
        };
        let pre = pre.clone();
        let deadline = crate::limits::deadline_after(self.limits.timeout);
        let timeout = self.limits.timeout;
        let stderr = StderrTail::default();
        let long_running = LongRunning::default();
        let store = self.new_store(
            delivery_id,
            None,
            deadline,
            stderr.clone(),
            long_running.clone(),
        )?;
        let mut retiring = Retiring::new(store, ());
        let guest_message = GuestMessage::received(message);
        let run = async move {
            let mut returned = Ok(());
            let (mut stats, outcome) = instantiate_and_call(
                &mut retiring,
                (deadline, timeout),
                &stderr,
                async |store| pre.instantiate_async(store).await,
                async |instance, store| {
                    let handle = store.data_mut().give_message(guest_message)?;
                    returned = instance
                        .wasi_messaging_incoming_handler()
                        .call_handle(store, handle)
                        .await?;
                    Ok(())
                },
            )
            .await;
            let state = retiring.data_mut();
            stats.tcp_connections = state.tcp.opened;
            stats.tcp_denied = state.tcp.denied;
            (retiring, stats, outcome, returned)
        };
        let (retiring, stats, outcome, returned) = self
            .slow_lane
            .run(long_running, deadline, run)
            .await
            .map_err(|error| lane_failed(error, timeout))?;
        drop(retiring);
        outcome?;
        returned.map_err(|error| HandleError::MessageError(describe(&error)))?;
        Ok(stats)
    }
}

/// The error a handler returned, as the log shows it: the WIT case and
/// its text.
fn describe(error: &crate::bindings::types::Error) -> String {
    use crate::bindings::types::Error;
    match error {
        Error::Timeout => "timeout".to_owned(),
        Error::Connection(why) => format!("connection({why:?})"),
        Error::PermissionDenied(why) => format!("permission-denied({why:?})"),
        Error::Other(why) => format!("other({why:?})"),
    }
}
