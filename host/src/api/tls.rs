//! The API's TLS: a certificate chain and key in PEM files
//! (`--api-tls-cert`, `--api-tls-key`), required whenever the API listens
//! on anything but loopback, where the token would otherwise cross the
//! network in the clear.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The acceptor for `--api-listen address`, or `None` for plain HTTP on
/// loopback; an error when the address is not loopback and no
/// certificate is given, or when the files do not load.
pub(crate) fn acceptor(
    address: SocketAddr,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let (cert, key) = match (cert, key) {
        (None, None) => {
            if !address.ip().is_loopback() {
                bail!(
                    "--api-listen {address} is not a loopback address: the management API's tokens would cross the network in the clear; give --api-tls-cert and --api-tls-key, or listen on 127.0.0.1"
                );
            }
            return Ok(None);
        }
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            bail!("--api-tls-cert needs --api-tls-key, the certificate's private key")
        }
        (None, Some(_)) => bail!("--api-tls-key needs --api-tls-cert, the certificate chain"),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--api-tls-cert {}: cannot read it", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "--api-tls-cert {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        bail!("--api-tls-cert {}: holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--api-tls-key {}: not a PEM private key", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot set up TLS")?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .with_context(|| {
        format!(
            "--api-tls-cert {} and --api-tls-key {} do not make a usable certificate and key",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
