//! `[database]`: Postgres, and the check of `database.url` when settings
//! load: what sqlx would refuse or ignore only at the first connection, said
//! at start-up with the parameter to fix, and never with the URL's password
//! or a key's content.
//!
//! TLS is configured in the URL, as libpq does it: `sslmode`,
//! `sslrootcert` (the CA file), `sslcert` and `sslkey` (the client's
//! certificate and key, PEM files). sqlx reads those files again at every
//! new connection, so rotating them needs no restart; this check only
//! makes sure that, at start-up, they are there and are what they claim.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgConnectOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{check, check_text, expose_secret, SettingsError, MAX_PG_IDENTIFIER_BYTES};

/// Postgres.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (`postgres://user:password@host:port/database`); kept secret in logs.
    /// TLS goes in its query: `sslmode=verify-full&sslrootcert=CA&sslcert=CERT&sslkey=KEY`
    /// (files, checked when settings load: see `settings::database`).
    #[serde(serialize_with = "expose_secret")]
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// The channel (`LISTEN`/`NOTIFY`) on which every commit that changes
    /// models names them: the consumer and `PUT /models` notify, the model
    /// service's live feed listens.
    pub notify_channel: String,
    /// How long to wait for a connection (humantime: `5s`, `500ms`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/postgres"),
            max_connections: 10,
            notify_channel: "model_updates".into(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl DatabaseSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_url(self.url.expose_secret()).map_err(|reason| SettingsError::Invalid {
            setting: "database.url",
            reason,
        })?;
        check(
            "database.max_connections",
            self.max_connections >= 1,
            || "0 connections can run no query".to_owned(),
        )?;
        let channel = &self.notify_channel;
        check_text("database.notify_channel", channel, MAX_PG_IDENTIFIER_BYTES)?;
        check("database.notify_channel", !channel.contains('\0'), || {
            "contains a NUL byte".to_owned()
        })
    }
}

/// The query parameters sqlx 0.8 reads from a Postgres URL
/// (`PgConnectOptions::parse_from_url`), besides `options[...]`. It ignores
/// any other with a warning that prints the value, which could be a secret
/// (libpq's `sslpassword`), so others are refused here instead.
const KNOWN: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// What a certificate or key file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// `Err` says what is wrong with the URL, without repeating it.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "the scheme is `{}`, not `postgres`",
            parsed.scheme()
        ));
    }
    let (mut cert, mut key) = (None, None);
    for (name, value) in parsed.query_pairs() {
        match &*name {
            "sslpassword" => {
                return Err("`sslpassword`: encrypted client keys are not supported; \
                     give `sslkey` a decrypted key (`openssl pkey -in client.key -out plain.key`)"
                    .to_owned())
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                check_file(&name, &value, Pem::Certificates)?
            }
            "sslcert" | "ssl-cert" => cert = Some(check_file(&name, &value, Pem::Certificates)?),
            "sslkey" | "ssl-key" => key = Some(check_file(&name, &value, Pem::PrivateKey)?),
            known if KNOWN.contains(&known) || known.starts_with("options[") => {}
            unknown => {
                return Err(format!(
                    "unknown parameter `{unknown}` (sqlx would ignore it); the known ones are {}",
                    KNOWN.join(", ")
                ))
            }
        }
    }
    if cert.is_some() != key.is_some() {
        return Err(
            "`sslcert` and `sslkey` go together: a client certificate needs its key".to_owned(),
        );
    }
    // sqlx's own reading, for what is left (an unknown `sslmode`, a port
    // that is not a number); its messages do not repeat the URL.
    PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads the file a TLS parameter names and checks that it holds PEM of
/// the expected kind. Only the parameter and the path are ever shown.
fn check_file(parameter: &str, path: &str, want: Pem) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("`{parameter}` {path}: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let ok = match want {
        Pem::Certificates => text.contains("-----BEGIN CERTIFICATE-----"),
        Pem::PrivateKey => {
            if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || text.contains("Proc-Type: 4,ENCRYPTED")
            {
                return Err(format!(
                    "`{parameter}` {path}: the key is encrypted, which sqlx cannot read; \
                     decrypt it (`openssl pkey -in {path} -out plain.key`)"
                ));
            }
            text.contains("PRIVATE KEY-----")
        }
    };
    if ok {
        Ok(())
    } else {
        let what = match want {
            Pem::Certificates => "PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "PEM private key (-----BEGIN PRIVATE KEY-----)",
        };
        Err(format!("`{parameter}` {path}: holds no {what}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::check_url;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nsecret-key-bytes\n-----END PRIVATE KEY-----\n";

    fn url(query: &str) -> String {
        format!("postgres://bayes:hunter2@db.example.com:5432/bayes?{query}")
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_url_with_tls_files_that_exist_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = (
            write(dir.path(), "ca.crt", CERT),
            write(dir.path(), "c.crt", CERT),
            write(dir.path(), "c.key", KEY),
        );
        for query in [
            format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}"),
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "sslmode=require".to_owned(),
            "application_name=bayes&options[statement_timeout]=5s".to_owned(),
            String::new(),
        ] {
            assert_eq!(check_url(&url(&query)), Ok(()), "{query}");
        }
    }

    #[test]
    fn what_sqlx_would_refuse_or_ignore_is_refused_without_the_password_or_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            write(dir.path(), "c.crt", CERT),
            write(dir.path(), "c.key", KEY),
        );
        let encrypted = write(
            dir.path(),
            "e.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let missing = dir.path().join("missing.crt").display().to_string();
        let cases = [
            (format!("sslrootcert={missing}"), "`sslrootcert`"),
            (format!("sslrootcert={key}"), "holds no PEM certificate"),
            (
                format!("sslcert={cert}&sslkey={cert}"),
                "holds no PEM private key",
            ),
            (format!("sslcert={cert}"), "go together"),
            (format!("sslkey={key}"), "go together"),
            (format!("sslcert={cert}&sslkey={encrypted}"), "encrypted"),
            ("sslpassword=hunter3".to_owned(), "`sslpassword`"),
            (
                "connect_timeout=10".to_owned(),
                "unknown parameter `connect_timeout`",
            ),
            ("sslmode=verify-everything".to_owned(), "verify-everything"),
        ];
        for (query, want) in cases {
            let err = check_url(&url(&query)).expect_err(&query);
            assert!(err.contains(want), "{query}: {err}");
            for secret in ["hunter2", "hunter3", "secret-key-bytes"] {
                assert!(!err.contains(secret), "{query}: {err} shows a secret");
            }
        }
        let err = check_url("mysql://u:hunter2@h/d").unwrap_err();
        assert!(err.contains("`mysql`") && !err.contains("hunter2"), "{err}");
        let err = check_url("postgres://u:hunter2@h:notaport/d").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
