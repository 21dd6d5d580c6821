//! A private certificate authority made by the test that needs it, with the
//! certificates a TLS broker and its clients present: nothing is committed,
//! nothing outlives the test's directory.
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, which both librdkafka (OpenSSL) and
//! Apache Kafka's `PEM` key stores read. A server certificate names
//! `localhost` and `127.0.0.1`, so librdkafka's default host-name check
//! (`ssl.endpoint.identification.algorithm=https`) passes.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate and its key, written as PEM files.
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

impl CertFiles {
    /// The certificate's PEM text.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("reading a certificate")
    }

    /// The key's PEM text.
    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).expect("reading a key")
    }
}

/// A certificate authority with its certificate in `dir/<name>-ca.pem`.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
    /// The CA's certificate (PEM): what clients give as `ssl.ca.location`
    /// and the broker as its trust store.
    pub ca_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files in `dir` (created when missing).
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("creating the certificates' directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a self-signed CA");
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, issuer.pem()).expect("writing the CA certificate");
        Self {
            issuer,
            dir: dir.to_owned(),
            name: name.to_owned(),
            ca_file,
        }
    }

    /// A broker's certificate for `localhost` and `127.0.0.1`.
    pub fn server_cert(&self, file_name: &str) -> CertFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, file_name)
    }

    /// A client's certificate with `common_name` as its subject (the
    /// principal a broker sees: `User:CN=<common_name>`).
    pub fn client_cert(&self, file_name: &str, common_name: &str) -> CertFiles {
        self.issue(Self::client_params(common_name), file_name)
    }

    /// A client certificate that expired long ago (valid in the year 2000 only).
    pub fn expired_client_cert(&self, file_name: &str, common_name: &str) -> CertFiles {
        let mut params = Self::client_params(common_name);
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2000, 12, 31);
        self.issue(params, file_name)
    }

    fn client_params(common_name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
    }

    fn issue(&self, params: CertificateParams, file_name: &str) -> CertFiles {
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing a certificate");
        let stem = format!("{}-{file_name}", self.name);
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
            key_and_cert: self.dir.join(format!("{stem}.pem")),
        };
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        std::fs::write(&files.cert, &cert_pem).expect("writing a certificate");
        std::fs::write(&files.key, &key_pem).expect("writing a key");
        std::fs::write(&files.key_and_cert, format!("{key_pem}{cert_pem}"))
            .expect("writing a key store");
        files
    }
}
