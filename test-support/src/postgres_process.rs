//! A Postgres server of a test's own that speaks TLS only: `initdb` into a
//! throwaway directory, `ssl = on` with a server certificate for `localhost`
//! and 127.0.0.1 signed by a private CA the test makes ([`crate::certs`]),
//! and a `pg_hba.conf` with `hostssl` lines only: the role [`CERT_ROLE`]
//! logs in with a client certificate (`cert`), the role [`PASSWORD_ROLE`]
//! with a password (`scram-sha-256`), both over TLS. Plain TCP is refused;
//! the test itself administers the server over its Unix socket.
//!
//! The binaries are Debian's, under `/usr/lib/postgresql/<version>/bin`
//! (the newest, as `pg_bin` in `scripts/lib/common.sh` picks it); as root
//! they run as the `postgres` user, which the server insists on. Without
//! them the test fails saying so, rather than passing without having run.
//!
//! A watchdog shell holds the read end of a pipe whose write end only this
//! process has: when the value is dropped, or the test binary exits in any
//! way (a static is never dropped, a killed process closes its pipes too),
//! the watchdog reads end-of-file, stops the server and removes its
//! directory. So one server can be shared by every test of a binary
//! ([`PostgresProcess::shared`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use platform::settings::DatabaseSettings;
use secrecy::SecretString;

use crate::certs::{CertFiles, CertificateAuthority};
use crate::unique;

/// The role that logs in with a client certificate (its common name).
pub const CERT_ROLE: &str = "bayes_cert";
/// The role that logs in with a password, over TLS too.
pub const PASSWORD_ROLE: &str = "bayes_password";

/// A running TLS-only Postgres; dropping it stops the server and removes
/// its directory.
#[derive(Debug)]
pub struct PostgresProcess {
    dir: PathBuf,
    port: u16,
    ca: CertificateAuthority,
    ca_file: PathBuf,
    password: String,
    psql: PathBuf,
    watchdog: Option<(Child, ChildStdin)>,
}

impl PostgresProcess {
    /// One server for every test of this test binary, started on first use.
    pub fn shared() -> &'static PostgresProcess {
        static SHARED: OnceLock<PostgresProcess> = OnceLock::new();
        SHARED.get_or_init(PostgresProcess::start)
    }

    /// Creates the cluster, its certificates and roles, starts it on a free
    /// port and returns once it accepts connections.
    pub fn start() -> Self {
        crate::init_tracing();
        let bin = server_binaries();
        let dir = std::env::temp_dir().join(unique("test-postgres"));
        let data = dir.join("data");
        let client = dir.join("client");
        std::fs::create_dir_all(&client).expect("creating the server's directory");
        let as_root = is_root();
        if as_root {
            // The server runs as postgres: it needs the directory, the
            // client files stay root's.
            run(Command::new("chown").arg("postgres").arg(&dir));
        }
        let ca = CertificateAuthority::new("bayes test CA");
        let ca_file = ca.write(&client.join("ca.crt"));
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut process = Self {
            port: crate::kafka_process::free_ports(1)[0],
            dir: dir.clone(),
            ca,
            ca_file,
            password,
            psql: bin.join("psql"),
            watchdog: None,
        };
        // From here on the directory is the watchdog's to remove, whatever
        // fails below.
        process.watchdog = Some(spawn_watchdog(&bin.join("pg_ctl"), &dir, &data));
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        process.configure(&data);
        let log = dir.join("server.log");
        let started = as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("running pg_ctl");
        assert!(
            started.success(),
            "the TLS Postgres did not start; the end of its log:\n{}",
            tail(&log)
        );
        process.psql(&format!(
            "CREATE ROLE {CERT_ROLE} LOGIN; CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{}'",
            process.password
        ));
        process
    }

    /// Writes the server's certificate and key, `postgresql.conf`'s TLS and
    /// speed settings, and a `pg_hba.conf` that allows TLS only.
    fn configure(&self, data: &Path) {
        let server = self.ca.server(&["localhost", "127.0.0.1"]);
        let files = server.write(data, "server");
        std::fs::copy(&self.ca_file, data.join("ca.crt")).expect("copying the CA");
        if is_root() {
            for file in [&files.cert, &files.key, &data.join("ca.crt")] {
                run(Command::new("chown").arg("postgres").arg(file));
            }
        }
        let conf = format!(
            "\n# The test's own settings.\n\
             listen_addresses = '127.0.0.1,127.0.0.2'\n\
             port = {port}\n\
             unix_socket_directories = '{socket}'\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             ssl_ca_file = 'ca.crt'\n\
             password_encryption = 'scram-sha-256'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             log_connections = on\n",
            port = self.port,
            socket = self.dir.display(),
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("opening postgresql.conf");
        file.write_all(conf.as_bytes())
            .expect("writing postgresql.conf");
        // 127.0.0.2 reaches the same server under an address its
        // certificate does not name.
        let hba = format!(
            "local all postgres trust\n\
             hostssl all {CERT_ROLE} 127.0.0.0/8 cert\n\
             hostssl all {PASSWORD_ROLE} 127.0.0.0/8 scram-sha-256\n"
        );
        std::fs::write(data.join("pg_hba.conf"), hba).expect("writing pg_hba.conf");
    }

    /// The port it listens on (127.0.0.1 and 127.0.0.2).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the server's certificate, and that the server
    /// trusts for client certificates.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA itself, to sign more certificates with.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// [`PASSWORD_ROLE`]'s password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A directory for the test's client files (read by this process only).
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A client certificate and key for `user` signed by the server's CA,
    /// written under a name no other test uses.
    pub fn client_cert(&self, user: &str) -> CertFiles {
        self.ca
            .client(user)
            .write(&self.client_dir(), &unique(user))
    }

    /// Creates a database owned by `owner`, under a name no other test
    /// uses, and returns the name.
    pub fn create_database(&self, owner: &str) -> String {
        let name = unique("test").replace('-', "_");
        self.psql(&format!("CREATE DATABASE {name} OWNER {owner}"));
        name
    }

    /// `postgres://user@host:port/database?query`.
    pub fn url(&self, user: &str, host: &str, database: &str, query: &[(&str, &Path)]) -> String {
        let mut url = url::Url::parse(&format!(
            "postgres://{user}@{host}:{}/{database}",
            self.port
        ))
        .expect("a URL");
        for (key, value) in query {
            url.query_pairs_mut()
                .append_pair(key, &value.to_string_lossy());
        }
        url.into()
    }

    /// [`CERT_ROLE`]'s URL for `database` on `host` (`127.0.0.1`, or
    /// `127.0.0.2`, which the server's certificate does not name) with
    /// `sslmode=mode`, trusting the CA file `ca`, with the client
    /// certificate `client` when given.
    pub fn cert_url(
        &self,
        host: &str,
        database: &str,
        mode: &str,
        ca: &Path,
        client: Option<&CertFiles>,
    ) -> String {
        let mode = Path::new(mode);
        let mut query = vec![("sslmode", mode), ("sslrootcert", ca)];
        if let Some(files) = client {
            query.extend([
                ("sslcert", files.cert.as_path()),
                ("sslkey", files.key.as_path()),
            ]);
        }
        self.url(CERT_ROLE, host, database, &query)
    }

    /// [`Self::cert_url`] as deployments write it: `verify-full` on
    /// 127.0.0.1 (the name in the server's certificate), trusting this
    /// server's CA.
    pub fn verify_full_url(&self, database: &str, client: Option<&CertFiles>) -> String {
        self.cert_url("127.0.0.1", database, "verify-full", self.ca_file(), client)
    }

    /// A fresh database of [`CERT_ROLE`]'s and the settings that reach it
    /// as the operations guide says: `verify-full`, the CA file, a client
    /// certificate.
    pub fn database_settings(&self) -> DatabaseSettings {
        let database = self.create_database(CERT_ROLE);
        let client = self.client_cert(CERT_ROLE);
        let url = self.verify_full_url(&database, Some(&client));
        DatabaseSettings {
            url: SecretString::from(url),
            max_connections: 4,
            ..DatabaseSettings::default()
        }
    }

    /// The end of the server's log (connections are logged, with why they
    /// were refused).
    pub fn log_tail(&self) -> String {
        tail(&self.dir.join("server.log"))
    }

    /// Runs SQL as the superuser over the Unix socket.
    pub fn psql(&self, sql: &str) {
        let output = Command::new(&self.psql)
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PostgresProcess {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            // End of file: the watchdog stops the server and removes the
            // directory; wait until it has.
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The newest server's `bin` directory under `/usr/lib/postgresql`.
fn server_binaries() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no Postgres server under /usr/lib/postgresql/<version>/bin: install Debian's \
             postgresql package (scripts/test.sh does); the TLS tests need a server of their own"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program`, as the postgres user when we are root (the server refuses to
/// run as root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The watchdog: waits for end of file on its standard input, then stops
/// the server at once and removes `dir`.
fn spawn_watchdog(pg_ctl: &Path, dir: &Path, data: &Path) -> (Child, ChildStdin) {
    let stop = as_postgres(pg_ctl);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"read -r _; dir="$1"; shift; "$@" >/dev/null 2>&1; rm -rf "$dir""#)
        .arg("watchdog")
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "stop"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("starting the watchdog");
    let stdin = child.stdin.take().expect("the watchdog's stdin");
    (child, stdin)
}

fn run(command: &mut Command) {
    let output = command.output().expect("running a setup command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The last 40 lines of `log`.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
