//! HTTPS: a certificate and key from PEM files, served through rustls with
//! its safe defaults (TLS 1.2 and 1.3 only), and swapped without a restart.
//! A new connection takes the pair in force when it is accepted; connections
//! already open keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate and key files, and the server config built from them.
pub struct TlsSource {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSource {
    /// Loads the pair; a bad or missing file is refused with one line naming it.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsSource, String> {
        Ok(TlsSource {
            current: RwLock::new(build(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Reads the files again. A bad new pair is refused, and the old one
    /// stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = build(&self.cert, &self.key)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// The config a new connection uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read())
    }
}

/// The certificates of a PEM file, at least one; an error names the file
/// after `what` (the setting or option that gave it).
pub fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn build(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(cert, "tls_cert")?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_cert {} with tls_key: {e}", cert.display()))?;
    Ok(Arc::new(config))
}
