//! `serverless-wasm:platform/log`: guest log lines into the host log.

use tracing::Level;

use crate::bindings::log::{Host, Level as GuestLevel};
use crate::state::PlatformView;

impl Host for PlatformView<'_> {
    fn log(&mut self, level: GuestLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            GuestLevel::Trace => Level::TRACE,
            GuestLevel::Debug => Level::DEBUG,
            GuestLevel::Info => Level::INFO,
            GuestLevel::Warn => Level::WARN,
            GuestLevel::Error => Level::ERROR,
        };
        // Cut into pieces and counted against the request's output budget.
        self.output.log(level, &message);
        Ok(())
    }
}
