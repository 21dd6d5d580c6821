//! What a test broker is made of: its listeners (with their security
//! protocols and SASL mechanisms), the users created when its storage is
//! formatted, its TLS identity, its place in a quorum; and the
//! `server.properties` and `kafka-storage format` arguments that follow.
//!
//! One node is the common case. A cluster is N builders that share a cluster
//! id and name the same voters: give each node its `node_id`, the
//! `controller_port` the others list in `voters`, and start them together
//! (a voter waits for the others' votes before it answers clients).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How clients talk to a listener, as `listener.security.protocol.map` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The JAAS login module a client names in `sasl.jaas.config` (Java clients).
    pub fn login_module(self) -> &'static str {
        match self {
            Self::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
            Self::ScramSha256 | Self::ScramSha512 => {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            }
        }
    }
}

/// One client listener on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Listener {
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) mechanisms: Vec<SaslMechanism>,
    pub(crate) client_auth: bool,
    pub(crate) port: Option<u16>,
}

impl Listener {
    fn new(name: &str, protocol: Protocol) -> Self {
        Self {
            name: name.to_ascii_uppercase(),
            protocol,
            mechanisms: Vec::new(),
            client_auth: false,
            port: None,
        }
    }

    pub fn plaintext(name: &str) -> Self {
        Self::new(name, Protocol::Plaintext)
    }

    /// TLS without SASL; add [`Self::require_client_certificate`] for mutual TLS.
    pub fn ssl(name: &str) -> Self {
        Self::new(name, Protocol::Ssl)
    }

    pub fn sasl_plaintext(name: &str, mechanisms: &[SaslMechanism]) -> Self {
        Self {
            mechanisms: mechanisms.to_vec(),
            ..Self::new(name, Protocol::SaslPlaintext)
        }
    }

    pub fn sasl_ssl(name: &str, mechanisms: &[SaslMechanism]) -> Self {
        Self {
            mechanisms: mechanisms.to_vec(),
            ..Self::new(name, Protocol::SaslSsl)
        }
    }

    /// `ssl.client.auth=required`: a client without a certificate the
    /// broker's trust store accepts is refused at the handshake.
    pub fn require_client_certificate(mut self) -> Self {
        self.client_auth = true;
        self
    }

    /// A port of the caller's (default: a free one chosen at start).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// The broker's TLS identity and trust: PEM files, as `ssl.keystore.type=PEM`
/// and `ssl.truststore.type=PEM` read them.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// The broker's key, then its certificate, in one file.
    pub key_and_cert: PathBuf,
    /// The CA certificates a client certificate must chain to.
    pub trusted_ca: PathBuf,
}

/// A SCRAM user, created in the metadata when the storage is formatted
/// (`kafka-storage format --add-scram`), so it exists before the first start.
#[derive(Debug, Clone)]
pub(crate) struct ScramUser {
    pub mechanism: SaslMechanism,
    pub name: String,
    pub password: String,
}

/// The internal listener every broker has: brokers and the readiness probe
/// talk on it, whatever the test adds.
pub(crate) const INTERNAL: &str = "PLAINTEXT";
const CONTROLLER: &str = "CONTROLLER";

/// What every node adds after its listeners and log.dirs, as the scripts do.
const NODE_PROPERTIES: &str = include_str!("../../../scripts/kafka/node.properties");

/// Everything [`super::KafkaProcess`] needs to write its configuration and
/// format its storage.
#[derive(Debug, Clone, Default)]
pub struct KafkaBuilder {
    /// The broker's directory, chosen (and made) with the builder, so that a
    /// test can write its certificates there: they go when the broker goes.
    pub(crate) dir: PathBuf,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) scram_users: Vec<ScramUser>,
    pub(crate) plain_users: Vec<(String, String)>,
    pub(crate) tls: Option<BrokerTls>,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) node_id: Option<u32>,
    pub(crate) cluster_id: Option<String>,
    pub(crate) voters: Option<String>,
    pub(crate) internal_port: Option<u16>,
    pub(crate) controller_port: Option<u16>,
}

impl KafkaBuilder {
    /// A builder for a broker in the new directory `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            ..Self::default()
        }
    }

    /// The directory the broker will have (it exists already): a place for
    /// files it reads, such as its certificates, removed with it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a client listener (the internal PLAINTEXT one is always there).
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// A SCRAM user, created when the storage is formatted.
    pub fn scram_user(mut self, mechanism: SaslMechanism, name: &str, password: &str) -> Self {
        assert!(
            mechanism != SaslMechanism::Plain,
            "PLAIN users are not SCRAM users: use plain_user"
        );
        self.scram_users.push(ScramUser {
            mechanism,
            name: name.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// A PLAIN user, in the listeners' JAAS configuration (the broker checks
    /// PLAIN passwords against its own configuration).
    pub fn plain_user(mut self, name: &str, password: &str) -> Self {
        self.plain_users
            .push((name.to_owned(), password.to_owned()));
        self
    }

    /// The broker's certificate and the CA it trusts for client certificates;
    /// needed by every SSL or SASL_SSL listener.
    pub fn tls(mut self, tls: BrokerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A `server.properties` line of the caller's; it wins over the defaults.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }

    /// This node's id (default 1).
    pub fn node_id(mut self, id: u32) -> Self {
        self.node_id = Some(id);
        self
    }

    /// The cluster id every node of a cluster is formatted with (default: a
    /// new random one).
    pub fn cluster_id(mut self, id: &str) -> Self {
        self.cluster_id = Some(id.to_owned());
        self
    }

    /// `controller.quorum.voters` (`1@127.0.0.1:9093,2@...`), for a cluster
    /// of fixed voters; without it the node is a quorum of its own.
    pub fn voters(mut self, voters: &str) -> Self {
        self.voters = Some(voters.to_owned());
        self
    }

    /// The internal (PLAINTEXT) listener's port (default: a free one).
    pub fn internal_port(mut self, port: u16) -> Self {
        self.internal_port = Some(port);
        self
    }

    /// The controller's port (default: a free one).
    pub fn controller_port(mut self, port: u16) -> Self {
        self.controller_port = Some(port);
        self
    }

    /// Starts the broker and returns once it answers clients.
    pub fn start(self) -> super::KafkaProcess {
        super::KafkaProcess::start_built(self)
    }

    /// Every listener with a port: the internal one first, then the test's.
    pub(crate) fn bound(
        &self,
        internal_port: u16,
        ports: &mut impl Iterator<Item = u16>,
    ) -> Vec<BoundListener> {
        let mut all = vec![BoundListener {
            name: INTERNAL.to_owned(),
            protocol: Protocol::Plaintext,
            port: internal_port,
        }];
        for listener in &self.listeners {
            assert!(
                listener.name != INTERNAL && listener.name != CONTROLLER,
                "{} is the name of a listener every test broker has: pick another",
                listener.name
            );
            let port = listener
                .port
                .unwrap_or_else(|| ports.next().expect("a free port for every listener"));
            all.push(BoundListener {
                name: listener.name.clone(),
                protocol: listener.protocol,
                port,
            });
        }
        all
    }

    /// The `server.properties` of this node, with its data in `data`.
    pub(crate) fn server_properties(
        &self,
        listeners: &[BoundListener],
        controller_port: u16,
        data: &Path,
    ) -> String {
        let node_id = self.node_id.unwrap_or(1);
        let endpoints = |with_controller: bool| {
            let mut list: Vec<String> = listeners
                .iter()
                .map(|l| format!("{}://127.0.0.1:{}", l.name, l.port))
                .collect();
            if with_controller {
                list.push(format!("{CONTROLLER}://127.0.0.1:{controller_port}"));
            }
            list.join(",")
        };
        let protocol_map: Vec<String> = std::iter::once(format!("{CONTROLLER}:PLAINTEXT"))
            .chain(
                listeners
                    .iter()
                    .map(|l| format!("{}:{}", l.name, l.protocol.as_str())),
            )
            .collect();
        let quorum = match &self.voters {
            Some(voters) => format!("controller.quorum.voters={voters}"),
            None => format!("controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"),
        };
        let mut text = format!(
            "# Written by test-support's KafkaProcess on every start.
process.roles=broker,controller
node.id={node_id}
{quorum}
listeners={listeners}
advertised.listeners={advertised}
listener.security.protocol.map={map}
inter.broker.listener.name={INTERNAL}
controller.listener.names={CONTROLLER}
log.dirs={data}
{NODE_PROPERTIES}",
            listeners = endpoints(true),
            advertised = endpoints(false),
            map = protocol_map.join(","),
            data = data.display(),
        );
        for listener in &self.listeners {
            self.write_security(&mut text, listener);
        }
        for (key, value) in &self.properties {
            let _ = writeln!(text, "{key}={value}");
        }
        text
    }

    /// The SASL and TLS lines of one listener.
    fn write_security(&self, text: &mut String, listener: &Listener) {
        let prefix = format!("listener.name.{}", listener.name.to_ascii_lowercase());
        if !listener.mechanisms.is_empty() {
            let names: Vec<&str> = listener.mechanisms.iter().map(|m| m.as_str()).collect();
            let _ = writeln!(text, "{prefix}.sasl.enabled.mechanisms={}", names.join(","));
        }
        for mechanism in &listener.mechanisms {
            let jaas = match mechanism {
                SaslMechanism::Plain => {
                    let users: String = self
                        .plain_users
                        .iter()
                        .map(|(name, password)| format!(" user_{name}=\"{password}\""))
                        .collect();
                    format!("{} required{users};", mechanism.login_module())
                }
                SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                    format!("{} required;", mechanism.login_module())
                }
            };
            let _ = writeln!(
                text,
                "{prefix}.{}.sasl.jaas.config={jaas}",
                mechanism.as_str().to_ascii_lowercase()
            );
        }
        if listener.protocol.uses_tls() {
            let tls = self.tls.as_ref().unwrap_or_else(|| {
                panic!(
                    "listener {} uses TLS: give the broker a certificate with .tls(...)",
                    listener.name
                )
            });
            let _ = writeln!(
                text,
                "{prefix}.ssl.keystore.type=PEM\n{prefix}.ssl.keystore.location={}\n\
                 {prefix}.ssl.truststore.type=PEM\n{prefix}.ssl.truststore.location={}",
                tls.key_and_cert.display(),
                tls.trusted_ca.display()
            );
            if listener.client_auth {
                let _ = writeln!(text, "{prefix}.ssl.client.auth=required");
            }
        }
    }

    /// `kafka-storage format` arguments after `format`.
    pub(crate) fn format_args(&self, cluster_id: &str, properties: &Path) -> Vec<String> {
        let mut args = Vec::new();
        if self.voters.is_none() {
            args.push("--standalone".to_owned());
        }
        args.extend([
            "--ignore-formatted".to_owned(),
            "-t".to_owned(),
            cluster_id.to_owned(),
            "-c".to_owned(),
            properties.display().to_string(),
        ]);
        for user in &self.scram_users {
            args.push("--add-scram".to_owned());
            args.push(format!(
                "{}=[name={},password={}]",
                user.mechanism.as_str(),
                user.name,
                user.password
            ));
        }
        args
    }
}

/// A listener with the port it got.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_listener_with_users_gets_its_mechanisms_jaas_and_key_store() {
        let builder = KafkaBuilder::default()
            .listener(Listener::sasl_ssl(
                "secure",
                &[SaslMechanism::Plain, SaslMechanism::ScramSha512],
            ))
            .listener(Listener::ssl("mtls").require_client_certificate())
            .plain_user("alice", "a-secret")
            .scram_user(SaslMechanism::ScramSha512, "bob", "b-secret")
            .tls(BrokerTls {
                key_and_cert: "/tls/broker.pem".into(),
                trusted_ca: "/tls/ca.pem".into(),
            });
        let mut ports = [9001, 9002].into_iter();
        let listeners = builder.bound(9000, &mut ports);
        let text = builder.server_properties(&listeners, 9009, Path::new("/data"));
        for line in [
            "listeners=PLAINTEXT://127.0.0.1:9000,SECURE://127.0.0.1:9001,MTLS://127.0.0.1:9002,CONTROLLER://127.0.0.1:9009",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL",
            "listener.name.secure.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "listener.name.secure.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a-secret\";",
            "listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.mtls.ssl.keystore.location=/tls/broker.pem",
            "listener.name.mtls.ssl.client.auth=required",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
        }
        assert!(!text.contains("listener.name.secure.ssl.client.auth"));
        let args = builder.format_args("abc", Path::new("/p"));
        assert!(args.contains(&"--standalone".to_owned()));
        assert!(args.contains(&"SCRAM-SHA-512=[name=bob,password=b-secret]".to_owned()));
    }

    #[test]
    fn a_node_of_a_cluster_names_the_voters_and_is_not_formatted_alone() {
        let builder = KafkaBuilder::default()
            .node_id(2)
            .voters("1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103");
        let listeners = builder.bound(9000, &mut std::iter::empty());
        let text = builder.server_properties(&listeners, 9102, Path::new("/data"));
        assert!(text.contains("node.id=2\n"));
        assert!(text.contains("controller.quorum.voters=1@127.0.0.1:9101,"));
        assert!(!text.contains("controller.quorum.bootstrap.servers"));
        assert!(!builder
            .format_args("abc", Path::new("/p"))
            .contains(&"--standalone".to_owned()));
    }
}
