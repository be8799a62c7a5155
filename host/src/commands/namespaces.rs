//! `host namespaces list|set`: the tenants and the route prefixes their
//! apps live under, through the API with an admin token of `default`, or
//! offline with `--state-dir`.

use std::path::PathBuf;

use http::Method;
use serverless_catalog::StateDir;
use serverless_catalog::audit::Actor;

use super::client::{Login, block_on, call, json_body};
use super::tokens::Output;

/// Arguments of `host namespaces`.
#[derive(clap::Args)]
pub(crate) struct NamespacesArgs {
    #[command(subcommand)]
    command: NamespacesCommand,
    /// Works offline on this state directory instead of through the API.
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum NamespacesCommand {
    /// Lists the namespaces and their prefixes.
    List {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Gives a namespace (made when new) the route prefix its apps'
    /// routes must start with, and that no other namespace may use.
    Set {
        /// The namespace.
        name: String,
        /// The prefix, such as `/team-a`.
        #[arg(long)]
        prefix: String,
    },
}

/// Runs `host namespaces`.
pub(crate) fn run(args: NamespacesArgs) -> anyhow::Result<()> {
    let listed: Vec<(String, Option<String>)> = match (&args.command, &args.state_dir) {
        (NamespacesCommand::Set { name, prefix }, Some(dir)) => {
            StateDir::open(dir)?.set_route_prefix(name, prefix, &Actor::local())?;
            println!("namespace `{name}` has the route prefix {prefix}");
            return Ok(());
        }
        (NamespacesCommand::Set { name, prefix }, None) => {
            let login = Login::load()?;
            block_on(async {
                call(
                    &login,
                    Method::PUT,
                    &format!("/v1/namespaces/{name}"),
                    json_body(&serde_json::json!({ "route_prefix": prefix })),
                )
                .await?
                .json()
            })?;
            println!("namespace `{name}` has the route prefix {prefix}");
            return Ok(());
        }
        (NamespacesCommand::List { .. }, Some(dir)) => StateDir::open(dir)?
            .namespaces()?
            .into_iter()
            .map(|n| (n.name, n.route_prefix))
            .collect(),
        (NamespacesCommand::List { .. }, None) => {
            let login = Login::load()?;
            let answer = block_on(async {
                call(&login, Method::GET, "/v1/namespaces", None)
                    .await?
                    .json()
            })?;
            answer["namespaces"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap_or_default().to_owned(),
                        n["route_prefix"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        }
    };
    let NamespacesCommand::List { output } = args.command else {
        return Ok(());
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::Value::Array(
                listed
                    .iter()
                    .map(|(name, prefix)| serde_json::json!({"name": name, "route_prefix": prefix}))
                    .collect()
            )
        ),
        Output::Text => {
            let rows: Vec<[String; 2]> = listed
                .into_iter()
                .map(|(name, prefix)| [name, prefix.unwrap_or_else(|| "-".to_owned())])
                .collect();
            print!(
                "{}",
                super::common::table(["NAMESPACE", "ROUTE PREFIX"], &rows)
            );
        }
    }
    Ok(())
}
