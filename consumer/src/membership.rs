//! Static group membership: the `group.instance.id` this process presents to
//! the group coordinator. A member that comes back with the same id after a
//! crash gets its partitions back at once, without a rebalance and without
//! waiting out the session timeout (Kafka's KIP-345).

/// The longest `group.instance.id` Kafka accepts.
const MAX_LEN: usize = 249;

/// A valid `group.instance.id`: 1 to 249 of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceId(String);

impl InstanceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `consumer.instance_id` was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "consumer.instance_id {0:?} is not a valid group.instance.id: use 1 to {MAX_LEN} letters, \
     digits, '.', '_' or '-' (or \"auto\", or \"none\")"
)]
pub struct InvalidInstanceId(String);

/// The id the `consumer.instance_id` setting asks for: `"none"` is dynamic
/// membership; `"auto"` is `bayes-consumer-<host>-<admin port>`, or dynamic
/// membership when the admin port is 0 (picked at random, so not stable
/// across restarts); anything else is taken as it is.
pub(crate) fn resolve(
    setting: &str,
    admin_port: u16,
    hostname: impl FnOnce() -> String,
) -> Result<Option<InstanceId>, InvalidInstanceId> {
    match setting {
        "none" => Ok(None),
        "auto" if admin_port == 0 => Ok(None),
        "auto" => {
            // Host names may hold characters Kafka refuses (and, in
            // principle, be long): keep what is allowed, cut the rest.
            let host: String = hostname()
                .chars()
                .map(|c| if is_allowed(c) { c } else { '-' })
                .collect();
            let suffix = format!("-{admin_port}");
            let mut id = format!("bayes-consumer-{host}");
            id.truncate(MAX_LEN - suffix.len());
            id.push_str(&suffix);
            Ok(Some(InstanceId(id)))
        }
        explicit => {
            let valid = !explicit.is_empty()
                && explicit.len() <= MAX_LEN
                && explicit.chars().all(is_allowed);
            if valid {
                Ok(Some(InstanceId(explicit.to_owned())))
            } else {
                Err(InvalidInstanceId(explicit.to_owned()))
            }
        }
    }
}

/// The characters Kafka allows in group and instance ids.
fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// This machine's host name (the container's, under compose), lossily UTF-8.
pub(crate) fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(setting: &str, port: u16, host: &str) -> Result<Option<String>, String> {
        resolve(setting, port, || host.to_owned())
            .map(|id| id.map(|i| i.as_str().to_owned()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn auto_is_the_host_and_the_admin_port() {
        assert_eq!(
            id("auto", 8002, "worker-3.example"),
            Ok(Some("bayes-consumer-worker-3.example-8002".into()))
        );
    }

    #[test]
    fn auto_without_a_fixed_admin_port_is_dynamic_membership() {
        assert_eq!(id("auto", 0, "host"), Ok(None));
        assert_eq!(id("none", 8002, "host"), Ok(None));
    }

    #[test]
    fn characters_kafka_refuses_are_replaced_and_long_host_names_cut() {
        assert_eq!(
            id("auto", 8002, "héllo wörld"),
            Ok(Some("bayes-consumer-h-llo-w-rld-8002".into()))
        );
        let long = id("auto", 65535, &"h".repeat(400)).unwrap().unwrap();
        assert_eq!(long.len(), MAX_LEN);
        assert!(long.ends_with("h-65535"), "{long}");
    }

    #[test]
    fn an_explicit_id_is_used_as_it_is_or_refused_with_the_setting_name() {
        assert_eq!(id("consumer-1", 0, "host"), Ok(Some("consumer-1".into())));
        for bad in ["", "has space", "colon:here", &"x".repeat(250)] {
            let err = id(bad, 8002, "host").unwrap_err();
            assert!(err.contains("consumer.instance_id"), "{err}");
        }
    }
}
