//! `host publish TOPIC` and `host subscribe PATTERN`: a running host's
//! broker through its admin listener (`/publish`, `/subscribe`), to feed
//! a pipeline by hand or watch what flows through it.

use std::io::{Read as _, Write as _};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Arguments of `host publish`.
#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The topic, such as `telemetry` or `sensors.kitchen`.
    topic: String,
    /// The message's text; without it, standard input is the message.
    #[arg(long)]
    data: Option<String>,
    /// The message's content type.
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
    /// The running host's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    admin: std::net::SocketAddr,
}

/// Arguments of `host subscribe`.
#[derive(clap::Args)]
pub(crate) struct SubscribeArgs {
    /// The topics: a name or a pattern (`sensors.*`, `sensors.>`).
    pattern: String,
    /// Exits after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// The running host's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    admin: std::net::SocketAddr,
}

async fn connect(admin: std::net::SocketAddr) -> anyhow::Result<TcpStream> {
    TcpStream::connect(admin).await.with_context(|| {
        format!("cannot reach the host's admin endpoint at {admin} (is `host serve` running with --admin-listen {admin}?)")
    })
}

/// Reads the status line and headers; returns the status code.
async fn head(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("the admin endpoint answered {:?}", status.trim()))?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            return Ok(code);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `host publish`.
pub(crate) fn publish(args: PublishArgs) -> anyhow::Result<()> {
    serverless_messaging::Topic::new(&args.topic)?;
    let data = match &args.data {
        Some(text) => text.clone().into_bytes(),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read the message from standard input")?;
            bytes
        }
    };
    if let Some(bad) = args
        .content_type
        .as_deref()
        .and_then(|t| t.chars().find(|c| c.is_control()))
    {
        bail!(
            "--content-type holds the control character {bad:?}; give a media type such as application/json"
        );
    }
    runtime()?.block_on(async move {
        let mut stream = connect(args.admin).await?;
        let content_type = args
            .content_type
            .map(|value| format!("Content-Type: {value}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST /publish/{} HTTP/1.0\r\nHost: {}\r\n{content_type}Content-Length: {}\r\n\r\n",
            args.topic,
            args.admin,
            data.len()
        );
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(&data).await?;
        let mut reader = BufReader::new(stream);
        let code = head(&mut reader).await?;
        let mut body = String::new();
        reader.read_to_string(&mut body).await?;
        if code != 202 {
            bail!("the host refused the message ({code}): {}", body.trim());
        }
        let answer: serde_json::Value =
            serde_json::from_str(&body).context("the host's answer is not JSON")?;
        let reach = match answer["subscriptions"].as_u64() {
            Some(count) => format!("to {count} subscriptions"),
            None => "to the NATS server".to_owned(),
        };
        println!(
            "published {} on {} {reach}",
            answer["id"].as_str().unwrap_or("?"),
            args.topic,
        );
        Ok(())
    })
}

/// Runs `host subscribe`.
pub(crate) fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    serverless_messaging::TopicPattern::new(&args.pattern)?;
    runtime()?.block_on(async move {
        let mut stream = connect(args.admin).await?;
        let request = format!(
            "GET /subscribe/{} HTTP/1.0\r\nHost: {}\r\n\r\n",
            args.pattern, args.admin
        );
        stream.write_all(request.as_bytes()).await?;
        let mut reader = BufReader::new(stream);
        let code = head(&mut reader).await?;
        if code != 200 {
            let mut body = String::new();
            reader.read_to_string(&mut body).await?;
            bail!(
                "the host refused the subscription ({code}): {}",
                body.trim()
            );
        }
        let mut seen = 0u64;
        let mut line = String::new();
        loop {
            if args.count.is_some_and(|count| seen >= count) {
                return Ok(());
            }
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                eprintln!("the host closed the stream");
                return Ok(());
            }
            if let Some(json) = line.trim_end().strip_prefix("data: ") {
                let value: serde_json::Value = serde_json::from_str(json)
                    .context("the host sent a message that is not JSON")?;
                let mut out = std::io::stdout().lock();
                let data = value["data"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!("(hex) {}", value["data_hex"].as_str().unwrap_or(""))
                    });
                writeln!(
                    out,
                    "== {} {}{}\n{data}",
                    value["topic"].as_str().unwrap_or("?"),
                    value["id"].as_str().unwrap_or("?"),
                    value["content_type"]
                        .as_str()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default(),
                )?;
                out.flush()?;
                seen += 1;
            } else if let Some(note) = line.trim_end().strip_prefix(": ") {
                eprintln!("{note}");
            }
        }
    })
}
