//! Certificates the TLS tests make for themselves (rcgen), so no key is ever
//! committed: a private certificate authority, and server and client
//! certificates it signs, written as PEM files where a server (Postgres,
//! an Apache Kafka broker) or a client (sqlx, librdkafka) reads them.
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, which rustls, OpenSSL and Apache
//! Kafka's `PEM` key stores all read. Server certificates carry both the
//! server and the client purpose (a broker's certificate serves it as a
//! client of the other brokers too); client certificates the client one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
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
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM, not encrypted).
    pub key: PathBuf,
    /// The key, then the certificate, in one file: what Apache Kafka's
    /// `ssl.keystore.type=PEM` with `ssl.keystore.location` reads.
    pub key_and_cert: PathBuf,
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
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate whose common name is `user`: Postgres's `cert`
    /// authentication logs in the role of that name, a broker sees the
    /// principal `User:CN=<user>`.
    pub fn client(&self, user: &str) -> Issued {
        self.sign(client_params(user))
    }

    /// A client certificate that expired long ago (valid in 2000 only).
    pub fn expired_client(&self, user: &str) -> Issued {
        let mut params = client_params(user);
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2000, 12, 31);
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

fn client_params(user: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params.distinguished_name.push(DnType::CommonName, user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

impl Issued {
    /// Writes `<stem>.crt`, `<stem>.key` and `<stem>.pem` (key then
    /// certificate) into `dir`, the keys readable by their owner only
    /// (libpq and Postgres refuse a key others can read).
    pub fn write(&self, dir: &Path, stem: &str) -> CertFiles {
        use std::os::unix::fs::PermissionsExt;
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            key_and_cert: dir.join(format!("{stem}.pem")),
        };
        std::fs::write(&files.cert, &self.cert_pem).expect("writing a certificate");
        std::fs::write(&files.key, &self.key_pem).expect("writing a key");
        std::fs::write(
            &files.key_and_cert,
            format!("{}{}", self.key_pem, self.cert_pem),
        )
        .expect("writing a key store");
        for key in [&files.key, &files.key_and_cert] {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
                .expect("restricting a key");
        }
        files
    }
}
