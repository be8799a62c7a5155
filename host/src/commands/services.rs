//! `host services`: lists a running host's `[[services]]` (state, restart
//! rule, runs, uptime and how the last run ended) from its admin endpoint.

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Arguments of `host services`.
#[derive(clap::Args)]
pub(crate) struct ServicesArgs {
    /// The running host's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) admin: std::net::SocketAddr,

    /// `text`, a table for people, or `json`, the admin endpoint's answer
    /// as it is, for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// How `host services` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

/// Runs `host services`.
pub(crate) fn run(args: ServicesArgs) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let body = tokio.block_on(fetch(args.admin, "/services"))?;
    let services: Vec<serde_json::Value> = serde_json::from_str(&body)
        .with_context(|| format!("the admin endpoint at {} sent no service list", args.admin))?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&services)?),
        Output::Text if services.is_empty() => println!("no services"),
        Output::Text => print!("{}", table(&services)),
    }
    Ok(())
}

/// How long the admin endpoint may take to answer.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest answer read from the admin endpoint.
const MAX_ANSWER: u64 = 16 << 20;

/// `GET path` on the admin endpoint at `address`: the body of a `200`.
async fn fetch(address: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.with_context(|| {
            format!("cannot reach the host's admin endpoint at {address} (is `host serve` running with --admin-listen {address}?)")
        })?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream
            .take(MAX_ANSWER + 1)
            .read_to_string(&mut answer)
            .await
            .with_context(|| {
                format!("cannot read the answer of the admin endpoint at {address}")
            })?;
        if answer.len() as u64 > MAX_ANSWER {
            bail!(
                "the admin endpoint at {address} answered more than {} MiB",
                MAX_ANSWER >> 20
            );
        }
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(PATIENCE, exchange)
        .await
        .map_err(|_| {
            anyhow::anyhow!("the admin endpoint at {address} did not answer within {PATIENCE:?}")
        })??;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("the admin endpoint at {address} sent no HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("the admin endpoint at {address} answered {status:?}");
    }
    Ok(body.to_owned())
}

/// The services as a table, one line each.
fn table(services: &[serde_json::Value]) -> String {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 6]> = services
        .iter()
        .map(|service| {
            [
                text(&service["name"]),
                text(&service["state"]),
                text(&service["restart"]),
                text(&service["runs"]),
                service["uptime_seconds"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), uptime),
                text(&service["last_end"]),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "RESTART", "RUNS", "UPTIME", "LAST END"];
    super::common::table(header, &rows)
}

/// Seconds as `1h02m03s`, `4m05s` or `6s`.
fn uptime(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_each_service() {
        let services: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"name":"pubsub","state":"running","restart":"on-failure","runs":2,"restarts":1,"uptime_seconds":3723,"last_end":"exited with status 1"},
                {"name":"telemetry","state":"down","restart":"never","runs":1,"restarts":0,"uptime_seconds":null,"last_end":null}]"#,
        )
        .unwrap();
        assert_eq!(
            table(&services),
            "NAME       STATE    RESTART     RUNS  UPTIME    LAST END\n\
             pubsub     running  on-failure  2     1h02m03s  exited with status 1\n\
             telemetry  down     never       1     -         -\n"
        );
    }

    #[test]
    fn uptimes_read_as_hours_minutes_and_seconds() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(65), "1m05s");
        assert_eq!(uptime(3600), "1h00m00s");
    }
}
