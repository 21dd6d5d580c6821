//! A fresh, migrated database per test, on the server named by
//! `DATABASE_URL` (see [`crate::TestEnvironment`]).

use platform::settings::DatabaseSettings;
use platform::store::{connect, migrate, StoreError};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::SecretString;

use crate::TestEnvironment;

/// A database made for one test. Dropping it leaves the database behind, so a
/// test that failed can be inspected; names are unique, so runs never collide.
/// The name carries its creation time (`test_<unix seconds>_<uuid>`), by
/// which `scripts/test.sh` drops the ones an earlier run left (an hour old or more).
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub settings: DatabaseSettings,
    pub name: String,
}

impl TestDatabase {
    /// Creates `test_<unix seconds>_<uuid>` on the test server and runs the migrations.
    pub async fn create() -> Result<(Self, DatabaseConnection), StoreError> {
        Self::create_with("").await
    }

    /// As [`TestDatabase::create`], in a database whose server-side encoding
    /// is `encoding` (`LATIN1`, say), as an operator may have made it: some
    /// characters a client sends have no equivalent there, and Postgres
    /// refuses them.
    pub async fn create_with_encoding(
        encoding: &str,
    ) -> Result<(Self, DatabaseConnection), StoreError> {
        Self::create_with(&format!(
            " ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        ))
        .await
    }

    async fn create_with(options: &str) -> Result<(Self, DatabaseConnection), StoreError> {
        let server = TestEnvironment::from_env().database_url;
        let admin = Database::connect(&server).await?;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("test_{created}_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\"{options}"))
            .await?;
        admin.close().await?;
        let url = replace_database(&server, &name);
        let settings = DatabaseSettings {
            url: SecretString::from(url),
            max_connections: 5,
            ..DatabaseSettings::default()
        };
        let db = connect(&settings).await?;
        migrate(&db).await?;
        Ok((TestDatabase { settings, name }, db))
    }

    /// The connection URL of this database.
    pub fn url(&self) -> String {
        use secrecy::ExposeSecret;
        self.settings.url.expose_secret().to_owned()
    }
}

/// `server` with its database replaced by `name` (credentials, host and query kept).
fn replace_database(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("DATABASE_URL is a URL");
    url.set_path(name);
    url.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_and_keeps_the_rest() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/t1",
            ),
            (
                "postgres://u:p@h:1/db?sslmode=disable",
                "postgres://u:p@h:1/t1?sslmode=disable",
            ),
            ("postgres://u@h", "postgres://u@h/t1"),
        ];
        for (url, want) in cases {
            assert_eq!(super::replace_database(url, "t1"), want);
        }
    }
}
