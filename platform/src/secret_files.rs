//! Settings read from files: `BAYES__..._FILE=/path` sets `BAYES__...` to
//! the file's content, the convention of compose and Kubernetes secrets
//! (`BAYES__DATABASE__URL_FILE=/run/secrets/database_url`,
//! `BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD_FILE=/run/secrets/kafka_password`),
//! so a secret need not sit in the environment, where `ps e` and crash
//! reports see it. It works for any setting; one trailing line break (as
//! `echo` writes) is dropped. Applied once, by the settings loader, before
//! the environment layer is read.

use std::collections::HashMap;
use std::path::PathBuf;

/// The suffix that turns a variable into the name of a file.
pub const FILE_SUFFIX: &str = "_FILE";

/// Why a `..._FILE` variable could not be used. Never carries the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{variable}: cannot read {path}: {source}")]
    Unreadable {
        variable: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{variable} and {variable}{FILE_SUFFIX} are both set: keep one")]
    Both { variable: String },
}

/// Replaces every `<prefix>__..._FILE` variable of `env` by the variable it
/// names, holding the file's content.
pub fn resolve(
    env: &mut HashMap<String, String>,
    prefix: &str,
    separator: &str,
) -> Result<(), SecretFileError> {
    let start = format!("{prefix}{separator}");
    let from_files: Vec<String> = env
        .keys()
        .filter(|k| k.starts_with(&start) && k.ends_with(FILE_SUFFIX))
        .cloned()
        .collect();
    for file_variable in from_files {
        let variable = file_variable[..file_variable.len() - FILE_SUFFIX.len()].to_owned();
        if env.contains_key(&variable) {
            return Err(SecretFileError::Both { variable });
        }
        let path = PathBuf::from(env.remove(&file_variable).unwrap_or_default());
        let content =
            std::fs::read_to_string(&path).map_err(|source| SecretFileError::Unreadable {
                variable: file_variable.clone(),
                path,
                source,
            })?;
        let content = content
            .strip_suffix('\n')
            .map(|c| c.strip_suffix('\r').unwrap_or(c))
            .unwrap_or(&content);
        env.insert(variable, content.to_owned());
    }
    Ok(())
}
