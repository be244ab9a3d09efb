//! TLS from PEM files: the listeners' server configuration (ALPN h2 and HTTP/1.1) and the
//! upstreams' client settings.

use std::sync::Arc;

use rampart_model::TlsFiles;
use tokio_rustls::TlsAcceptor;

use crate::upstream::dial::TlsDial;

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

/// The TLS client settings of every upstream with `tls`, its CA file read now (so a config
/// naming a file that cannot be read is rejected whole).
pub async fn upstream_dials(
    config: &rampart_model::Config,
) -> Result<std::collections::HashMap<String, Arc<TlsDial>>, String> {
    let mut out = std::collections::HashMap::new();
    for u in &config.upstreams {
        let Some(t) = &u.tls else { continue };
        let ca =
            match &t.ca_file {
                Some(path) => Some(tokio::fs::read(path).await.map_err(|e| {
                    format!("upstream {}: reading CA {}: {e}", u.name, path.display())
                })?),
                None => None,
            };
        let dial =
            TlsDial::new(t, ca.as_deref()).map_err(|e| format!("upstream {}: TLS: {e}", u.name))?;
        out.insert(u.name.clone(), Arc::new(dial));
    }
    Ok(out)
}
