//! `host tokens create|list|revoke`: the management API's tokens, made,
//! listed and revoked offline on the state directory, so that the first
//! admin token never travels over the network. A token's secret is shown
//! once, on stdout, when it is made; the catalog keeps only its hash.

use std::path::PathBuf;

use anyhow::Context as _;
use serverless_catalog::audit::Actor;
use serverless_catalog::{Scope, StateDir, TokenInfo};

/// Arguments of `host tokens`.
#[derive(clap::Args)]
pub(crate) struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(clap::Subcommand)]
enum TokensCommand {
    /// Makes a token and prints it (the only time it is shown).
    Create {
        #[command(flatten)]
        state: StateArgs,
        /// The namespace (tenant) the token belongs to; made when new.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// What the token may do: read, deploy or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// What the token is for, shown by `host tokens list`.
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Lists the tokens (never their secrets).
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Only this namespace's tokens.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Revokes a token by its id: it is refused from then on.
    Revoke {
        #[command(flatten)]
        state: StateArgs,
        /// The token's id, as `host tokens list` shows it.
        id: String,
    },
}

/// Where the state directory is.
#[derive(clap::Args)]
struct StateArgs {
    /// The host's state directory (`host serve --state-dir`); by default
    /// $SERVERLESS_WASM_STATE_DIR, else $XDG_STATE_HOME/serverless-wasm,
    /// else ~/.local/state/serverless-wasm.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// How the commands print.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    /// For people.
    Text,
    /// One JSON value, for scripts.
    Json,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
        .map_err(|error: serverless_catalog::CatalogError| error.to_string())
}

impl StateArgs {
    /// Opens the state directory.
    fn open(&self) -> anyhow::Result<StateDir> {
        let path = match &self.state_dir {
            Some(path) => path.clone(),
            None => default_state_dir().context(
                "no state directory: pass --state-dir, or set SERVERLESS_WASM_STATE_DIR, XDG_STATE_HOME or HOME",
            )?,
        };
        Ok(StateDir::open(&path)?)
    }
}

/// The per-user state directory.
pub(crate) fn default_state_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = set("SERVERLESS_WASM_STATE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(state) = set("XDG_STATE_HOME") {
        return Some(PathBuf::from(state).join("serverless-wasm"));
    }
    set("HOME").map(|home| PathBuf::from(home).join(".local/state/serverless-wasm"))
}

/// Runs `host tokens`.
pub(crate) fn run(args: TokensArgs) -> anyhow::Result<()> {
    match args.command {
        TokensCommand::Create {
            state,
            namespace,
            scope,
            description,
            output,
        } => {
            let mut catalog = state.open()?;
            let token = catalog.create_token(&namespace, scope, &description, &Actor::local())?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "id": token.info.id,
                        "namespace": token.info.namespace,
                        "scope": token.info.scope.to_string(),
                        "token": token.secret,
                    })
                ),
                Output::Text => {
                    eprintln!(
                        "token {} for namespace `{}`, scope {}; it is shown this once, keep it secret:",
                        token.info.id, token.info.namespace, token.info.scope
                    );
                    println!("{}", token.secret);
                }
            }
        }
        TokensCommand::List {
            state,
            namespace,
            output,
        } => {
            let tokens = state.open()?.list_tokens(namespace.as_deref())?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::Value::Array(tokens.iter().map(json).collect())
                ),
                Output::Text if tokens.is_empty() => println!("no tokens"),
                Output::Text => print!("{}", table(&tokens)),
            }
        }
        TokensCommand::Revoke { state, id } => {
            let info = state.open()?.revoke_token(&id, &Actor::local())?;
            println!(
                "token {} of namespace `{}` is revoked",
                info.id, info.namespace
            );
        }
    }
    Ok(())
}

/// `seconds` since the epoch as RFC 3339 in UTC, to the second.
fn date(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    let mut text = String::new();
    crate::logging::write_timestamp(&mut text, time);
    match text.split_once('.') {
        Some((to_the_second, _)) => format!("{to_the_second}Z"),
        None => text,
    }
}

fn json(token: &TokenInfo) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "namespace": token.namespace,
        "scope": token.scope.to_string(),
        "description": token.description,
        "created": date(token.created_at),
        "revoked": token.revoked_at.map(date),
    })
}

/// The tokens as a table, one line each.
fn table(tokens: &[TokenInfo]) -> String {
    let rows: Vec<[String; 6]> = tokens
        .iter()
        .map(|token| {
            [
                token.id.clone(),
                token.namespace.clone(),
                token.scope.to_string(),
                date(token.created_at),
                token
                    .revoked_at
                    .map_or_else(|| "active".to_owned(), |at| format!("revoked {}", date(at))),
                token.description.clone(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAMESPACE",
        "SCOPE",
        "CREATED",
        "STATE",
        "DESCRIPTION",
    ];
    super::common::table(header, &rows)
}
