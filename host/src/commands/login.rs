//! `host login URL` and `host whoami`: the management API's login, kept
//! in a 0600 file under the user's config directory (see
//! [`super::client::login_file`]). The token is read from standard input
//! or `$SERVERLESS_WASM_TOKEN`, never from the command line, where other
//! users could see it; it is checked with the API before it is stored.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use http::Method;

use super::client::{Login, block_on, call};
use super::tokens::Output;

/// Arguments of `host login`.
#[derive(clap::Args)]
pub(crate) struct LoginArgs {
    /// The API's URL, as `host serve` printed it (`management API on
    /// ...`).
    url: String,
    /// A CA certificate (PEM) to trust for an `https://` API whose
    /// certificate is not a public one.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// Arguments of `host whoami`.
#[derive(clap::Args)]
pub(crate) struct WhoamiArgs {
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Reads the token from `$SERVERLESS_WASM_TOKEN` or standard input.
fn read_token() -> anyhow::Result<String> {
    if let Some(token) = std::env::var("SERVERLESS_WASM_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(token.trim().to_owned());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("token: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        bail!(
            "no token: pipe it on standard input (`host login URL < token-file`) or set SERVERLESS_WASM_TOKEN"
        );
    }
    Ok(token)
}

/// Runs `host login`.
pub(crate) fn login(args: LoginArgs) -> anyhow::Result<()> {
    let ca_cert = match args.ca_cert {
        Some(path) => Some(
            std::fs::canonicalize(&path)
                .with_context(|| format!("--ca-cert {}: cannot find it", path.display()))?,
        ),
        None => None,
    };
    let login = Login {
        url: args.url.trim_end_matches('/').to_owned(),
        token: read_token()?,
        ca_cert,
    };
    let me = block_on(async { call(&login, Method::GET, "/v1/whoami", None).await?.json() })
        .context("the login was not stored")?;
    let file = login.store()?;
    println!(
        "logged in to {} as token {} of namespace `{}` (scope {}); saved in {}",
        login.url,
        me["id"].as_str().unwrap_or_default(),
        me["namespace"].as_str().unwrap_or_default(),
        me["scope"].as_str().unwrap_or_default(),
        file.display()
    );
    Ok(())
}

/// Runs `host whoami`.
pub(crate) fn whoami(args: WhoamiArgs) -> anyhow::Result<()> {
    let login = Login::load()?;
    let me = block_on(async { call(&login, Method::GET, "/v1/whoami", None).await?.json() })?;
    match args.output {
        Output::Json => println!("{me}"),
        Output::Text => {
            println!("url:          {}", login.url);
            println!("token:        {}", me["id"].as_str().unwrap_or_default());
            println!(
                "namespace:    {}",
                me["namespace"].as_str().unwrap_or_default()
            );
            println!("scope:        {}", me["scope"].as_str().unwrap_or_default());
            let prefix = match (me["route_prefix"].as_str(), me["namespace"].as_str()) {
                (Some(prefix), _) => prefix.to_owned(),
                (None, Some("default")) => "(any path no namespace owns)".to_owned(),
                (None, _) => {
                    "(none yet: an admin of `default` assigns one before this namespace can deploy)"
                        .to_owned()
                }
            };
            println!("route prefix: {prefix}");
        }
    }
    Ok(())
}
