//! `host apps deploy|list|show|promote|rollback|delete|logs`: the
//! catalog's apps through the management API, with the stored login.
//! Output is for people by default and one JSON value with `--output
//! json`; a refused call exits 1 with the API's message.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt as _;

use super::client::{Login, block_on, call, json_body, send};
use super::tokens::{Output, date};
use crate::invocations::format_invocation;

/// Arguments of `host apps`.
#[derive(clap::Args)]
pub(crate) struct AppsArgs {
    #[command(subcommand)]
    command: AppsCommand,
}

#[derive(clap::Subcommand)]
enum AppsCommand {
    /// Uploads a component and makes it the app's next version, active at
    /// once unless --no-activate.
    Deploy {
        /// The app's name in the login's namespace.
        name: String,
        /// The component (.wasm).
        file: PathBuf,
        /// A route, `METHOD /path` (`GET,POST /api/*`), repeatable.
        #[arg(long = "route", value_name = "ROUTE", required = true)]
        routes: Vec<String>,
        /// An environment variable, `NAME=VALUE`, repeatable.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// An environment variable from the host's environment,
        /// `NAME=HOST_VARIABLE` (the `default` namespace only).
        #[arg(long = "env-from-host", value_name = "NAME=VARIABLE")]
        env_from_host: Vec<String>,
        /// Another key of an `[[applications]]` entry, `KEY=VALUE` with
        /// the value in TOML (`timeout=5s`, `max_concurrency=4`,
        /// `allowed_http=["https://api.example.com"]`), repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Keeps the current version serving; promote the new one later.
        #[arg(long)]
        no_activate: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Lists the namespace's apps.
    List {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Shows an app's versions, the active one, digests and routes.
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Makes a version the active one.
    Promote {
        name: String,
        version: i64,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Makes an older version active again: the one before the active
    /// one, or --to N.
    Rollback {
        name: String,
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Deletes the app and every version of it; its routes stop serving.
    Delete {
        name: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Prints the app's last invocations with their log lines; --follow
    /// keeps printing new ones.
    Logs {
        name: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

/// `KEY=VALUE`, split, or an error naming the flag.
fn pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .with_context(|| format!("{flag} {text:?} is not KEY=VALUE"))
}

/// A `--set` value: TOML when it reads as TOML, else the text itself.
fn setting_value(text: &str) -> serde_json::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .and_then(|value| serde_json::to_value(value).ok())
        .unwrap_or_else(|| serde_json::Value::String(text.to_owned()))
}

/// Runs `host apps`.
pub(crate) fn run(args: AppsArgs) -> anyhow::Result<()> {
    let login = Login::load()?;
    block_on(run_with(args.command, login))
}

async fn run_with(command: AppsCommand, login: Login) -> anyhow::Result<()> {
    match command {
        AppsCommand::Deploy {
            name,
            file,
            routes,
            env,
            env_from_host,
            settings,
            no_activate,
            output,
        } => {
            let mut env_map = serde_json::Map::new();
            for entry in &env {
                let (key, value) = pair("--env", entry)?;
                env_map.insert(key.to_owned(), value.into());
            }
            for entry in &env_from_host {
                let (key, variable) = pair("--env-from-host", entry)?;
                env_map.insert(key.to_owned(), serde_json::json!({ "from_env": variable }));
            }
            let mut settings_map = serde_json::Map::new();
            for entry in &settings {
                let (key, value) = pair("--set", entry)?;
                settings_map.insert(key.to_owned(), setting_value(value));
            }
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read the component {}", file.display()))?;
            let uploaded = call(
                &login,
                Method::PUT,
                "/v1/components",
                Some(("application/wasm", Bytes::from(bytes))),
            )
            .await?
            .json()
            .with_context(|| format!("the upload of {} was refused", file.display()))?;
            let digest = uploaded["digest"].as_str().unwrap_or_default().to_owned();
            let body = serde_json::json!({
                "component": digest,
                "routes": routes,
                "env": env_map,
                "settings": settings_map,
                "activate": !no_activate,
            });
            let answer = call(
                &login,
                Method::POST,
                &format!("/v1/apps/{name}/versions"),
                json_body(&body),
            )
            .await?
            .json()
            .with_context(|| format!("the deploy of `{name}` was refused"))?;
            let version = answer["version"].as_i64().unwrap_or_default();
            match output {
                Output::Json => println!("{answer}"),
                Output::Text if no_activate => println!(
                    "deployed `{name}` version {version} (not active; try it with `serverless-preview: {name}@{version}`, then `host apps promote {name} {version}`)"
                ),
                Output::Text => println!("deployed `{name}` version {version}, now active"),
            }
        }
        AppsCommand::List { output } => {
            let answer = call(&login, Method::GET, "/v1/apps", None).await?.json()?;
            let apps = answer["apps"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json => println!("{}", serde_json::Value::Array(apps)),
                Output::Text if apps.is_empty() => println!("no apps"),
                Output::Text => {
                    let rows: Vec<[String; 4]> = apps
                        .iter()
                        .map(|app| {
                            [
                                app["name"].as_str().unwrap_or_default().to_owned(),
                                app["active"]
                                    .as_i64()
                                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                                app["versions"].as_array().map_or(0, Vec::len).to_string(),
                                strings(&app["routes"]).join(", "),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        super::common::table(["APP", "ACTIVE", "VERSIONS", "ROUTES"], &rows)
                    );
                }
            }
        }
        AppsCommand::Show { name, output } => {
            let app = call(&login, Method::GET, &format!("/v1/apps/{name}"), None)
                .await?
                .json()?;
            match output {
                Output::Json => println!("{app}"),
                Output::Text => {
                    println!(
                        "app {} (namespace {}, served as {})",
                        name,
                        app["namespace"].as_str().unwrap_or_default(),
                        app["served_as"].as_str().unwrap_or_default()
                    );
                    let rows: Vec<[String; 5]> = app["versions"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|v| {
                            [
                                v["version"].as_i64().unwrap_or_default().to_string(),
                                if v["active"].as_bool() == Some(true) {
                                    "active".to_owned()
                                } else {
                                    String::new()
                                },
                                date(v["created_at"].as_i64().unwrap_or_default()),
                                v["digest"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .chars()
                                    .take(12)
                                    .collect(),
                                strings(&v["routes"]).join(", "),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        super::common::table(
                            ["VERSION", "STATE", "CREATED", "DIGEST", "ROUTES"],
                            &rows
                        )
                    );
                }
            }
        }
        AppsCommand::Promote {
            name,
            version,
            output,
        } => {
            let answer = call(
                &login,
                Method::POST,
                &format!("/v1/apps/{name}/promote"),
                json_body(&serde_json::json!({ "version": version })),
            )
            .await?
            .json()?;
            match output {
                Output::Json => println!("{answer}"),
                Output::Text => println!("`{name}` now serves version {version}"),
            }
        }
        AppsCommand::Rollback { name, to, output } => {
            let answer = call(
                &login,
                Method::POST,
                &format!("/v1/apps/{name}/rollback"),
                json_body(&serde_json::json!({ "version": to })),
            )
            .await?
            .json()?;
            match output {
                Output::Json => println!("{answer}"),
                Output::Text => println!(
                    "`{name}` rolled back to version {}",
                    answer["active"].as_i64().unwrap_or_default()
                ),
            }
        }
        AppsCommand::Delete { name, output } => {
            let answer = call(&login, Method::DELETE, &format!("/v1/apps/{name}"), None)
                .await?
                .json()?;
            match output {
                Output::Json => println!("{answer}"),
                Output::Text => println!("`{name}` and its versions are deleted"),
            }
        }
        AppsCommand::Logs { name, follow } => {
            let path = format!(
                "/v1/apps/{name}/logs{}",
                if follow { "?follow" } else { "" }
            );
            if !follow {
                let kept = call(&login, Method::GET, &path, None).await?.json()?;
                let kept = kept.as_array().cloned().unwrap_or_default();
                if kept.is_empty() {
                    eprintln!("no invocations of `{name}` kept (yet)");
                }
                let mut out = std::io::stdout().lock();
                for invocation in kept {
                    out.write_all(format_invocation(&invocation).as_bytes())?;
                }
                return Ok(());
            }
            let response = send(&login, Method::GET, &path, None).await?;
            if !response.status().is_success() {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                super::client::Answer { status, body }.json()?;
                bail!("the API answered {status}");
            }
            let mut body = response.into_body();
            let mut pending = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("the API's stream broke off")?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                pending.extend_from_slice(data);
                while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = pending.drain(..end + 2).collect();
                    let event = String::from_utf8_lossy(&event);
                    let event = event.trim_end();
                    if let Some(json) = event.strip_prefix("data: ") {
                        let value: serde_json::Value = serde_json::from_str(json)
                            .context("the API sent an invocation that is not JSON")?;
                        let mut out = std::io::stdout().lock();
                        out.write_all(format_invocation(&value).as_bytes())?;
                        out.flush()?;
                    } else if event.starts_with(": following") {
                        eprintln!("following `{name}` (Ctrl-C to stop)");
                    } else if let Some(note) = event.strip_prefix(": ") {
                        eprintln!("{note}");
                    }
                }
            }
            eprintln!("the host closed the stream");
        }
    }
    Ok(())
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}
