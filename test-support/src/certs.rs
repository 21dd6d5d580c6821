//! Certificates the TLS tests make for themselves (rcgen), so no key is ever
//! committed: a private certificate authority, and server and client
//! certificates it signs, written as PEM files where a server or a client
//! reads them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A private certificate authority.
#[derive(Debug)]
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`Issued::write`] put a certificate and its key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertificateAuthority {
    /// A new authority whose certificate names `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The authority's certificate, which clients or servers trust.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the authority's certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("writing the CA certificate");
        path.to_owned()
    }

    /// A server certificate valid for `names`: host names, or IP addresses
    /// (which become IP address entries, as clients check them).
    pub fn server(&self, names: &[&str]) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().expect("a DNS name")),
            })
            .collect();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        self.sign(params)
    }

    /// A client certificate whose common name is `user`: Postgres's `cert`
    /// authentication logs in the role of that name.
    pub fn client(&self, user: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`, the key readable by
    /// its owner only (libpq and Postgres refuse a key others can read).
    pub fn write(&self, dir: &Path, stem: &str) -> CertFiles {
        use std::os::unix::fs::PermissionsExt;
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("writing a certificate");
        std::fs::write(&key, &self.key_pem).expect("writing a key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("restricting the key");
        CertFiles { cert, key }
    }
}
