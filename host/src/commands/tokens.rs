//! `host tokens create|list|revoke`: the management API's tokens, made,
//! listed and revoked offline on the state directory (`--state-dir`, or
//! when not logged in), so that the first admin token never travels over
//! the network, or through the API with the stored login. A token's
//! secret is shown once, on stdout, when it is made; the catalog keeps
//! only its hash.

use std::path::PathBuf;

use anyhow::Context as _;
use http::Method;
use serverless_catalog::audit::Actor;
use serverless_catalog::{Scope, StateDir, TokenInfo};

use super::client::{Login, block_on, call, json_body};

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
        /// Default: `default` offline, the login's own namespace through
        /// the API.
        #[arg(long)]
        namespace: Option<String>,
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

/// Where the tokens are: a state directory, or the API of the login.
#[derive(clap::Args)]
struct StateArgs {
    /// Works offline on the host's state directory (`host serve
    /// --state-dir`). Without it: through the API when logged in (`host
    /// login`), else on $SERVERLESS_WASM_STATE_DIR, else
    /// $XDG_STATE_HOME/serverless-wasm, else
    /// ~/.local/state/serverless-wasm.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// How the commands print.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Output {
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
    /// The login to go through, when the command is not offline. A login
    /// file that cannot be read is an error, not a quiet fall-back.
    fn remote(&self) -> anyhow::Result<Option<Login>> {
        let offline = self.state_dir.is_some()
            || std::env::var_os("SERVERLESS_WASM_STATE_DIR").is_some_and(|v| !v.is_empty());
        if offline || !Login::exists() {
            return Ok(None);
        }
        Login::load().map(Some)
    }

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
    let state = match &args.command {
        TokensCommand::Create { state, .. }
        | TokensCommand::List { state, .. }
        | TokensCommand::Revoke { state, .. } => state,
    };
    if let Some(login) = state.remote()? {
        return block_on(remote(args.command, login));
    }
    match args.command {
        TokensCommand::Create {
            state,
            namespace,
            scope,
            description,
            output,
        } => {
            let mut catalog = state.open()?;
            let namespace = namespace.unwrap_or_else(|| "default".to_owned());
            let token = catalog.create_token(&namespace, scope, &description, &Actor::local())?;
            print_created(&token.info, &token.secret, output);
        }
        TokensCommand::List {
            state,
            namespace,
            output,
        } => {
            let tokens = state.open()?.list_tokens(namespace.as_deref())?;
            print_list(&tokens, output);
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

/// Prints tokens as a table or JSON.
fn print_list(tokens: &[TokenInfo], output: Output) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::Value::Array(tokens.iter().map(json).collect())
        ),
        Output::Text if tokens.is_empty() => println!("no tokens"),
        Output::Text => print!("{}", table(tokens)),
    }
}

/// Prints a token just made: its secret alone on stdout for people.
fn print_created(info: &TokenInfo, secret: &str, output: Output) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "id": info.id,
                "namespace": info.namespace,
                "scope": info.scope.to_string(),
                "token": secret,
            })
        ),
        Output::Text => {
            eprintln!(
                "token {} for namespace `{}`, scope {}; it is shown this once, keep it secret:",
                info.id, info.namespace, info.scope
            );
            println!("{secret}");
        }
    }
}

/// A token as the API answers it.
fn from_api(value: &serde_json::Value) -> anyhow::Result<TokenInfo> {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    Ok(TokenInfo {
        id: text("id"),
        namespace: text("namespace"),
        scope: text("scope").parse()?,
        description: text("description"),
        created_at: value["created_at"].as_i64().unwrap_or(0),
        revoked_at: value["revoked_at"].as_i64(),
    })
}

/// `host tokens` through the API.
async fn remote(command: TokensCommand, login: Login) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            namespace,
            scope,
            description,
            output,
            ..
        } => {
            let body = serde_json::json!({
                "namespace": namespace,
                "scope": scope.to_string(),
                "description": description,
            });
            let answer = call(&login, Method::POST, "/v1/tokens", json_body(&body))
                .await?
                .json()?;
            let info = from_api(&answer)?;
            print_created(&info, answer["token"].as_str().unwrap_or_default(), output);
        }
        TokensCommand::List {
            namespace, output, ..
        } => {
            let answer = call(&login, Method::GET, "/v1/tokens", None)
                .await?
                .json()?;
            let tokens = answer["tokens"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(from_api)
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .filter(|token| namespace.as_ref().is_none_or(|n| *n == token.namespace))
                .collect::<Vec<_>>();
            print_list(&tokens, output);
        }
        TokensCommand::Revoke { id, .. } => {
            let answer = call(&login, Method::DELETE, &format!("/v1/tokens/{id}"), None)
                .await?
                .json()?;
            let info = from_api(&answer)?;
            println!(
                "token {} of namespace `{}` is revoked",
                info.id, info.namespace
            );
        }
    }
    Ok(())
}

/// `seconds` since the epoch as RFC 3339 in UTC, to the second.
pub(crate) fn date(seconds: i64) -> String {
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
