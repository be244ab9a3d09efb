//! TLS server configuration from PEM files, with ALPN for HTTP/2 and HTTP/1.1.

use std::sync::Arc;

use rampart_model::TlsFiles;
use tokio_rustls::TlsAcceptor;

/// Reads the certificate chain and key and builds an acceptor.
pub async fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_pem = tokio::fs::read(&files.cert_file)
        .await
        .map_err(|e| format!("reading certificate {}: {e}", files.cert_file))?;
    let key_pem = tokio::fs::read(&files.key_file)
        .await
        .map_err(|e| format!("reading private key {}: {e}", files.key_file))?;
    let config = rampart_net::tls::server_config(&cert_pem, &key_pem)
        .map_err(|e| format!("{} and {}: {e}", files.cert_file, files.key_file))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
