//! TLS server configuration from PEM files, with ALPN for HTTP/2 and HTTP/1.1.

use std::sync::Arc;

use rampart_model::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Reads the certificate chain and key and builds an acceptor.
pub async fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    rampart_net::install_crypto_provider();
    let cert_pem = tokio::fs::read(&files.cert_file)
        .await
        .map_err(|e| format!("reading certificate {}: {e}", files.cert_file))?;
    let key_pem = tokio::fs::read(&files.key_file)
        .await
        .map_err(|e| format!("reading private key {}: {e}", files.key_file))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parsing certificate {}: {e}", files.cert_file))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", files.cert_file));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("parsing private key {}: {e}", files.key_file))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS protocol versions: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        format!(
            "certificate {} and key {}: {e}",
            files.cert_file, files.key_file
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
