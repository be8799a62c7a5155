//! The management API's client for `host login`, `whoami`, `apps`,
//! `tokens` and `namespaces`: the stored login (URL, token and an optional
//! CA certificate, in a 0600 file under the user's config directory) and
//! one HTTP/1.1 exchange per call, over TLS for `https://` URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// What `host login` stores.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Login {
    /// The API's URL, such as `http://127.0.0.1:9465`.
    pub(crate) url: String,
    /// The token. Never printed.
    pub(crate) token: String,
    /// A CA certificate (PEM) that the API's certificate chains to, when
    /// it is not a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Where the login is kept: `$SERVERLESS_WASM_LOGIN`, else
/// `$XDG_CONFIG_HOME/serverless-wasm/login.json`, else
/// `~/.config/serverless-wasm/login.json`.
pub(crate) fn login_file() -> anyhow::Result<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(file) = set("SERVERLESS_WASM_LOGIN") {
        return Ok(PathBuf::from(file));
    }
    let config = match set("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME").context(
            "no config directory: set XDG_CONFIG_HOME or HOME, or SERVERLESS_WASM_LOGIN",
        )?)
        .join(".config"),
    };
    Ok(config.join("serverless-wasm").join("login.json"))
}

impl Login {
    /// Whether a login is stored at all.
    pub(crate) fn exists() -> bool {
        login_file().is_ok_and(|file| file.exists())
    }

    /// The stored login.
    pub(crate) fn load() -> anyhow::Result<Login> {
        let file = login_file()?;
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "not logged in ({} does not exist): run `host login URL` first",
                file.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", file.display()));
            }
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a login file; run `host login URL` again",
                file.display()
            )
        })
    }

    /// Stores the login, readable by its owner only.
    pub(crate) fn store(&self) -> anyhow::Result<PathBuf> {
        let file = login_file()?;
        if let Some(dir) = file.parent() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        let partial = file.with_extension("json.part");
        // A file left by an earlier attempt keeps its mode: start anew.
        match std::fs::remove_file(&partial) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot remove {}", partial.display()));
            }
        }
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
        }
        std::fs::rename(&partial, &file)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(file)
    }
}

/// An answer of the API.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The body as JSON, or an error with the API's message for a status
    /// that is not a success.
    pub(crate) fn json(self) -> anyhow::Result<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::json!({ "error": String::from_utf8_lossy(&self.body).trim().to_owned() })
        });
        if !self.status.is_success() {
            let message = value["error"].as_str().unwrap_or("no message").to_owned();
            bail!("the API answered {}: {message}", self.status);
        }
        Ok(value)
    }
}

/// The parts of an API URL.
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let fix = "write the API's URL as http://127.0.0.1:PORT or https://HOST:PORT";
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        bail!("`{url}` is not an http:// or https:// URL; {fix}");
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.is_empty() {
        bail!("`{url}` has a path; {fix}");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port.parse()
                .with_context(|| format!("`{url}`: `{port}` is not a port; {fix}"))?,
        ),
        _ => (
            authority
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            if tls { 443 } else { 80 },
        ),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !tls && !loopback {
        bail!(
            "`{url}` is plain HTTP to another machine: the token would cross the network in the clear; use https:// (the host serves its API over TLS off loopback)"
        );
    }
    Ok(Target { tls, host, port })
}

/// The TLS client settings: the login's CA, else the public roots.
fn tls_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?
            {
                let cert =
                    cert.with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{} is not a usable CA certificate", ca.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Sends one call and returns the response with its body unread.
pub(crate) async fn send(
    login: &Login,
    method: Method,
    path: &str,
    body: Option<(&'static str, Bytes)>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
    let target = parse_url(&login.url)?;
    let address = format!("{}:{}", target.host, target.port);
    let stream = TcpStream::connect(&address).await.with_context(|| {
        format!(
            "cannot reach the management API at {} (is `host serve --api-listen` running there?)",
            login.url
        )
    })?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, &address)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", login.token),
        );
    let body = match body {
        Some((content_type, bytes)) => {
            request = request.header(http::header::CONTENT_TYPE, content_type);
            Full::new(bytes)
        }
        None => Full::new(Bytes::new()),
    };
    let request = request.body(body).context("cannot build the request")?;
    let response = if target.tls {
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(tls_config(login.ca_cert.as_deref())?));
        let name = ServerName::try_from(target.host.clone())
            .with_context(|| format!("`{}` is not a host name", target.host))?;
        let stream = connector
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS with {} failed", login.url))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        sender.send_request(request).await?
    } else {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        sender.send_request(request).await?
    };
    Ok(response)
}

/// Sends one call and reads the whole answer.
pub(crate) async fn call(
    login: &Login,
    method: Method,
    path: &str,
    body: Option<(&'static str, Bytes)>,
) -> anyhow::Result<Answer> {
    let response = send(login, method, path, body).await?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("the API's answer broke off")?
        .to_bytes();
    Ok(Answer { status, body })
}

/// A JSON body.
pub(crate) fn json_body(value: &serde_json::Value) -> Option<(&'static str, Bytes)> {
    Some(("application/json", Bytes::from(value.to_string())))
}

/// Runs `work` on a small runtime of its own.
pub(crate) fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_or_refused_with_the_form() {
        let target = parse_url("https://api.example.com:8443/").unwrap();
        assert!(target.tls);
        assert_eq!(
            (target.host.as_str(), target.port),
            ("api.example.com", 8443)
        );
        let target = parse_url("http://[::1]:9000").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 9000));
        assert_eq!(parse_url("https://h").unwrap().port, 443);
        assert_eq!(
            parse_url("http://api.example.com:9465")
                .err()
                .unwrap()
                .to_string(),
            "`http://api.example.com:9465` is plain HTTP to another machine: the token would cross the network in the clear; use https:// (the host serves its API over TLS off loopback)"
        );
        assert!(parse_url("http://localhost:9465").is_ok());
        assert_eq!(
            parse_url("ftp://h").err().unwrap().to_string(),
            "`ftp://h` is not an http:// or https:// URL; write the API's URL as http://127.0.0.1:PORT or https://HOST:PORT"
        );
    }
}
