//! `host logs APP [--follow]`: reads an app's last invocations, with their
//! log lines, from a running host's admin endpoint, and with `--follow`
//! prints each new one as it finishes.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::invocations::format_invocation;

/// Arguments of `host logs`.
#[derive(clap::Args)]
pub(crate) struct LogsArgs {
    /// The app's name, as in the configuration.
    pub(crate) app: String,

    /// The running host's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) admin: std::net::SocketAddr,

    /// Keeps printing invocations as they finish.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
}

/// Prints one invocation given as JSON text.
fn print(json: &str) -> anyhow::Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("the host sent an invocation that is not JSON")?;
    let mut out = std::io::stdout().lock();
    out.write_all(format_invocation(&value).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Runs `host logs`.
pub(crate) fn run(args: LogsArgs) -> anyhow::Result<()> {
    if args.app.is_empty() || args.app.contains(['/', '?', '#', ' ']) {
        bail!("{:?} is not an app name", args.app);
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let address = args.admin;
        let mut stream = TcpStream::connect(address).await.with_context(|| {
            format!("cannot reach the host's admin endpoint at {address} (is `host serve` running with --admin-listen {address}?)")
        })?;
        let query = if args.follow { "?follow" } else { "" };
        let request = format!(
            "GET /logs/{}{query} HTTP/1.0\r\nHost: {address}\r\n\r\n",
            args.app
        );
        stream.write_all(request.as_bytes()).await?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).await?;
        if !status.starts_with("HTTP/1.") || status.split_whitespace().nth(1) != Some("200") {
            bail!("the admin endpoint at {address} answered {:?}", status.trim());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
                break;
            }
        }
        if !args.follow {
            let mut body = String::new();
            reader.read_to_string(&mut body).await?;
            let kept: Vec<serde_json::Value> =
                serde_json::from_str(&body).context("the host's answer is not JSON")?;
            if kept.is_empty() {
                eprintln!("no invocations of `{}` kept (yet)", args.app);
            }
            for invocation in kept {
                print(&invocation.to_string())?;
            }
            return Ok(());
        }
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                eprintln!("the host closed the stream");
                return Ok(());
            }
            if let Some(json) = line.trim_end().strip_prefix("data: ") {
                print(json)?;
            } else if line.starts_with(": following") {
                eprintln!("following `{}` on {address} (Ctrl-C to stop)", args.app);
            } else if let Some(note) = line.strip_prefix(": ") {
                eprintln!("{}", note.trim_end());
            }
        }
    })
}
