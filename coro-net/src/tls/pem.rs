//! PEM files to rustls' certificate and key types: [`load_certs`],
//! [`load_private_key`].

use std::io;
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Read every certificate (`-----BEGIN CERTIFICATE-----`) in the PEM file
/// at `path`, in file order (leaf first, as a server's chain must be).
/// Other sections (keys, parameters) are skipped.
///
/// This reads the file synchronously: call it at start-up, not on an I/O
/// thread in the middle of serving.
///
/// # Errors
///
/// Every error names the file:
///
/// * the file cannot be read: its `io::Error` kind (`NotFound`, ...);
/// * `InvalidData` when it is not PEM (no `-----BEGIN` line: DER, say),
///   a section is malformed (bad base64, no `-----END` line), or it holds
///   no certificate (the message lists the sections it does hold).
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coro-doc-certs-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("key-only.pem");
/// std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")?;
/// let err = coro_net::tls::load_certs(&path).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// assert!(err.to_string().contains("no certificate"), "{err}");
/// assert!(err.to_string().contains("key-only.pem"), "{err}");
/// let err = coro_net::tls::load_certs(dir.join("missing.pem")).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(())
/// ```
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let bytes = read(path, "certificates")?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(c.map_err(|e| bad_pem(path, e))?);
    }
    if certs.is_empty() {
        return Err(invalid(
            path,
            format!("no certificate in it ({})", found(&bytes)),
        ));
    }
    Ok(certs)
}

/// Read the first private key in the PEM file at `path`: PKCS#8
/// (`PRIVATE KEY`), PKCS#1 RSA (`RSA PRIVATE KEY`) or SEC1 EC
/// (`EC PRIVATE KEY`), and check that the ring provider can sign with it
/// (RSA, ECDSA P-256/P-384, Ed25519).
///
/// Reads the file synchronously, like [`load_certs`].
///
/// # Errors
///
/// Every error names the file:
///
/// * the file cannot be read: its `io::Error` kind (`NotFound`, ...);
/// * `InvalidData` when it is not PEM, is malformed, holds no private key
///   (the message lists what it holds), holds an **encrypted** key
///   (`ENCRYPTED PRIVATE KEY` or a legacy `Proc-Type: 4,ENCRYPTED` header:
///   decrypt it first, e.g. `openssl pkey -in key.pem -out plain.pem`), an
///   OpenSSH or DSA key, or a key of a type rustls cannot sign with.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coro-doc-key-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("locked.pem");
/// std::fs::write(&path, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")?;
/// let err = coro_net::tls::load_private_key(&path).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// assert!(err.to_string().contains("encrypted"), "{err}");
/// # std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(())
/// ```
pub fn load_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    let bytes = read(path, "private key")?;
    let labels = labels(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    if labels.iter().any(|l| l == "ENCRYPTED PRIVATE KEY")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(invalid(
            path,
            "the private key is encrypted (with a passphrase); rustls needs it decrypted, \
             e.g. `openssl pkey -in KEY -out PLAIN.pem`",
        ));
    }
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            let why = if labels.iter().any(|l| l == "OPENSSH PRIVATE KEY") {
                "an OpenSSH key, not a PEM private key: convert it with \
                 `ssh-keygen -p -m PKCS8 -f KEY`"
                    .to_owned()
            } else if labels.iter().any(|l| l == "DSA PRIVATE KEY") {
                "unsupported key type: DSA (rustls signs with RSA, ECDSA or Ed25519 keys)"
                    .to_owned()
            } else {
                format!("no private key in it ({})", found(&bytes))
            };
            return Err(invalid(path, why));
        }
        Err(e) => return Err(bad_pem(path, e)),
    };
    if let Err(e) = rustls::crypto::ring::sign::any_supported_type(&key) {
        return Err(invalid(
            path,
            format!(
                "unsupported private key type ({} key that rustls' ring provider cannot sign with: {e})",
                match &key {
                    PrivateKeyDer::Pkcs1(_) => "a PKCS#1 RSA",
                    PrivateKeyDer::Sec1(_) => "a SEC1 EC",
                    _ => "a PKCS#8",
                }
            ),
        ));
    }
    Ok(key)
}

fn read(path: &Path, what: &str) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read {what} from {}: {e}", path.display()),
        )
    })
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

fn bad_pem(path: &Path, e: pem::Error) -> io::Error {
    match e {
        pem::Error::Io(e) => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        e => invalid(path, format!("malformed PEM: {e:?}")),
    }
}

/// The labels of the `-----BEGIN <label>-----` lines in `bytes`.
fn labels(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
                .map(str::to_owned)
        })
        .collect()
}

/// "it holds: A, B" or "it is not PEM ...", for error messages.
fn found(bytes: &[u8]) -> String {
    let l = labels(bytes);
    if l.is_empty() {
        "it is not PEM: no -----BEGIN line (a DER file? convert it with \
         `openssl x509 -inform der` or `openssl pkey -inform der`)"
            .to_owned()
    } else {
        format!("it holds: {}", l.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_listed() {
        let pem = b"junk\n-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n\
                    -----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n";
        assert_eq!(labels(pem), ["X509 CRL", "PUBLIC KEY"]);
        assert!(found(pem).contains("X509 CRL, PUBLIC KEY"));
        assert!(found(b"\x30\x82\x01").contains("not PEM"));
    }
}
