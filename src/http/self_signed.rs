//! A throwaway certificate for trying HTTPS on one machine
//! (`serve --tls-self-signed`, and the HTTPS rows of `bench`).
//!
//! The X.509 encoding comes from rcgen: certificate encoding is code this
//! project should not own. Keys and signatures come from ring, the same
//! crypto rustls already uses. The pair is written as PEM files and then
//! served exactly like `tls_cert`/`tls_key` ([`super::TlsSource`]), so
//! reloading behaves the same.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// The names the certificate is good for: a demo is reached from this machine.
pub const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long a throwaway certificate stays valid.
pub const VALID_DAYS: i64 = 30;

/// A certificate and its key, in memory.
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (ECDSA P-256, PKCS#8), PEM.
    pub key_pem: String,
    /// The certificate, DER: what a client adds as its root.
    pub der: CertificateDer<'static>,
    /// The end of the validity period.
    pub not_after: OffsetDateTime,
}

/// A pair written to disk, and what to tell the person who asked for it.
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's SHA-256 fingerprint, as [`sha256_fingerprint`] prints it.
    pub fingerprint: String,
    pub der: CertificateDer<'static>,
    pub not_after: OffsetDateTime,
}

impl SelfSigned {
    /// A new key and a certificate for [`NAMES`], valid from an hour ago (a
    /// client whose clock is a little behind still accepts it) for
    /// [`VALID_DAYS`].
    pub fn generate() -> Result<SelfSigned, String> {
        let fail = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
        let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(fail)?;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(VALID_DAYS);
        params
            .distinguished_name
            .push(DnType::CommonName, "coupon-ledger self-signed (demo)");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        Ok(SelfSigned {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            not_after: params.not_after,
        })
    }

    /// Writes the pair. Each file is complete or absent (a temp file renamed
    /// over it), so a reload never reads half a file; the key is readable by
    /// its owner only.
    pub fn write(self, cert: &Path, key: &Path) -> Result<Written, String> {
        write_atomically(key, self.key_pem.as_bytes(), 0o600)?;
        write_atomically(cert, self.cert_pem.as_bytes(), 0o644)?;
        Ok(Written {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            fingerprint: sha256_fingerprint(&self.der),
            der: self.der,
            not_after: self.not_after,
        })
    }
}

/// Where the pair for database `db` goes: beside it, `<db>.selfsigned.crt`
/// and `<db>.selfsigned.key`, so one server's pair is found next to its data
/// and two databases never share one.
pub fn paths_beside(db: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut p = db.as_os_str().to_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    (with(".selfsigned.crt"), with(".selfsigned.key"))
}

/// Makes a new pair and writes it beside `db` (see [`paths_beside`]).
pub fn write_beside(db: &Path) -> Result<Written, String> {
    let (cert, key) = paths_beside(db);
    SelfSigned::generate()?.write(&cert, &key)
}

/// The SHA-256 of a DER certificate as `openssl x509 -fingerprint -sha256`
/// prints it: upper-case hex pairs joined by colons.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    // A leftover temp file may have other permissions; start from none.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_colon_separated_upper_case_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            sha256_fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn the_pair_sits_beside_the_database() {
        let (c, k) = paths_beside(Path::new("/var/lib/x/ledger.db"));
        assert_eq!(c, Path::new("/var/lib/x/ledger.db.selfsigned.crt"));
        assert_eq!(k, Path::new("/var/lib/x/ledger.db.selfsigned.key"));
    }

    #[test]
    fn a_written_pair_loads_as_tls_cert_and_tls_key_and_the_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "coupon-ledger-selfsigned-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let written = write_beside(&dir.join("l.db")).unwrap();
        let pem = std::fs::read_to_string(&written.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let mode = std::fs::metadata(&written.key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(written.fingerprint.len(), 32 * 3 - 1);
        let days = (written.not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((VALID_DAYS - 1..=VALID_DAYS).contains(&days), "{days}");
        assert!(super::super::TlsSource::load(&written.cert, &written.key).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
