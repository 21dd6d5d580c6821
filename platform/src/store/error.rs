//! [`StoreError`]: every failure of the store, classified once, here, by what
//! the caller should do about it, so no service guesses from driver errors.
//!
//! A database error is classified by its SQLSTATE when Postgres sent one
//! (<https://www.postgresql.org/docs/current/errcodes-appendix.html>), and by
//! the driver's error kind otherwise.

use sea_orm::sqlx::Error as SqlxError;
use sea_orm::{DbErr, RuntimeErr};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transient: the database cannot answer now (connection lost or refused,
    /// no pooled connection in time, shutting down, too many connections, a
    /// serialization failure or deadlock). The same call may succeed later:
    /// retry, or answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// Permanent: Postgres refused the statement (a constraint, a value out of
    /// range, a setting it does not accept, a syntax error), or it cannot run
    /// as written. The same call fails the same way again: a fault to fix,
    /// not to wait out.
    #[error("rejected by the database: {0}")]
    Rejected(#[source] DbErr),
    /// Another writer moved first: the batch's compare-and-set on the offset
    /// found it changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// What is stored is not a valid value of its domain type, or a value
    /// cannot take its column's type.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Permanent, and the data's fault: Postgres refused a value the
    /// statement carried (a character the database's encoding cannot hold,
    /// a string longer than its column, a key too large for its index).
    /// The same statement without that value can succeed: a service answers
    /// 422, the consumer dead-letters the record that carried it.
    #[error("the database cannot store a value: {0}")]
    Unstorable(#[source] DbErr),
    /// A batch carried observation ids applied before with other content
    /// (the batch statement raises on `applied_ids_content`); nothing was
    /// written. The caller finds them with `conflicting_ids`.
    #[error("observation ids conflict: {0}")]
    IdConflict(String),
    /// `models.auto_create` is off and a batch named models that do not
    /// exist (the batch statement raises on `models_unknown`); nothing was
    /// written. The caller finds them with `missing_models`.
    #[error("unknown models: {0}")]
    UnknownModels(String),
    /// No connection can be made until a person acts: the TLS handshake
    /// failed (the server's certificate is not signed by a trusted CA or
    /// names another host, or the server refused our certificate) or
    /// Postgres refused the login (no valid client certificate, a wrong
    /// password, a role `pg_hba.conf` does not admit). Waiting does not cure
    /// it, but the certificate files are read again at every connection,
    /// so callers that wait for the database keep trying, and say so at
    /// error level.
    #[error("the database connection is refused: {0}")]
    Refused(#[source] DbErr),
}

impl StoreError {
    /// Whether the same call may succeed later (only [`StoreError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether no connection can be made until a person fixes the
    /// certificates or the login ([`StoreError::Refused`]).
    pub fn is_refused(&self) -> bool {
        matches!(self, StoreError::Refused(_))
    }
}

/// Where a [`DbErr`] belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Unavailable,
    Rejected,
    Corrupt,
    Unstorable,
    IdConflict,
    UnknownModels,
    Refused,
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        match classify(&err) {
            Class::Unavailable => StoreError::Unavailable(err),
            Class::Rejected => StoreError::Rejected(err),
            Class::Corrupt => StoreError::Corrupt(err.to_string()),
            Class::Unstorable => StoreError::Unstorable(err),
            Class::IdConflict => StoreError::IdConflict(err.to_string()),
            Class::UnknownModels => StoreError::UnknownModels(err.to_string()),
            Class::Refused => StoreError::Refused(err),
        }
    }
}

fn classify(err: &DbErr) -> Class {
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return Class::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        // sea-orm's own connection failures carry no driver error.
        DbErr::Conn(RuntimeErr::Internal(_)) => return Class::Unavailable,
        // A row that does not convert to the type the code reads it as.
        DbErr::Type(_) | DbErr::Json(_) | DbErr::TryIntoErr { .. } => return Class::Corrupt,
        _ => return Class::Rejected,
    };
    match sqlx {
        SqlxError::Database(db) => {
            match db.constraint() {
                Some(ID_CONFLICT_CONSTRAINT) => return Class::IdConflict,
                Some(UNKNOWN_MODELS_CONSTRAINT) => return Class::UnknownModels,
                _ => {}
            }
            db.code()
                .map_or(Class::Rejected, |code| classify_sqlstate(&code))
        }
        // rustls's verdict on the server's certificate, or a certificate or
        // key file it cannot use.
        SqlxError::Tls(_) => Class::Refused,
        // The handshake's failures during I/O reach sqlx as I/O errors
        // wrapping rustls's: the server's certificate not trusted or for
        // another name, the server's alert that it refused ours.
        SqlxError::Io(io) if is_tls_failure(io) => Class::Refused,
        SqlxError::Io(_)
        | SqlxError::Protocol(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => Class::Unavailable,
        SqlxError::ColumnDecode { .. } | SqlxError::Decode(_) => Class::Corrupt,
        _ => Class::Rejected,
    }
}

/// Transient SQLSTATEs are listed; every other code Postgres sends means it
/// refused the statement itself (classes 22 data exception, 23 integrity
/// constraint violation, 42 syntax error or access rule violation, ...).
fn classify_sqlstate(code: &str) -> Class {
    // Class 28: invalid authorization specification (28000: pg_hba.conf
    // admits no such login, or the client certificate is missing or not
    // the role's; 28P01: a wrong password).
    if code.starts_with("28") {
        return Class::Refused;
    }
    let transient = match code {
        // Class 08: connection exception. Class 53: insufficient resources
        // (53300 too many connections). Class 58: system error (I/O).
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("58") => true,
        // Serialization failure, deadlock, statement completion unknown:
        // Postgres rolled back and asks for a retry.
        "40001" | "40P01" | "40003" => true,
        // 57P01..57P03 admin or crash shutdown, cannot connect now; 57P04
        // database dropped; 57P05 idle session timeout; 57014 cancelled
        // (statement timeout).
        "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "57014" => true,
        // Lock not available (lock timeout).
        "55P03" => true,
        // Read-only transaction: a standby answered during a failover.
        "25006" => true,
        // The database does not exist (dropped or not yet restored): the
        // service cannot answer, but nothing it sends is wrong.
        "3D000" => true,
        _ => false,
    };
    // A value the statement carried that the database cannot hold:
    // 22001 string data right truncation, 22021 character not in
    // repertoire (a NUL, bytes that are not UTF-8), 22P05 untranslatable
    // character (no equivalent in the database's encoding), 54000 program
    // limit exceeded (an index entry too large). Not 22003 (numeric value
    // out of range): a count past BIGINT is the stored state's, not the
    // record's.
    let unstorable = matches!(code, "22001" | "22021" | "22P05" | "54000");
    if transient {
        Class::Unavailable
    } else if unstorable {
        Class::Unstorable
    } else {
        Class::Rejected
    }
}

/// Whether an I/O error is rustls's verdict on the handshake.
fn is_tls_failure(io: &std::io::Error) -> bool {
    io.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// The constraint name the batch statement raises a conflict under (the
/// `refuse_id_conflicts` function of migration m0008).
const ID_CONFLICT_CONSTRAINT: &str = "applied_ids_content";
/// The constraint name `refuse_unknown_models` raises with (migration m0010).
const UNKNOWN_MODELS_CONSTRAINT: &str = "models_unknown";

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::fmt;

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

    use super::{classify, Class, SqlxError, StoreError};

    /// A database error as Postgres would send it: only the SQLSTATE matters here.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn exec(code: &'static str) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(SqlxError::Database(Box::new(
            Sqlstate(code),
        ))))
    }

    fn check(err: DbErr, want: Class) {
        let shown = err.to_string();
        assert_eq!(classify(&err), want, "{shown}");
        let store = StoreError::from(err);
        assert_eq!(store.is_transient(), want == Class::Unavailable, "{shown}");
        let variant_matches = match want {
            Class::Unavailable => matches!(store, StoreError::Unavailable(_)),
            Class::Rejected => matches!(store, StoreError::Rejected(_)),
            Class::Corrupt => matches!(store, StoreError::Corrupt(_)),
            Class::Unstorable => matches!(store, StoreError::Unstorable(_)),
            Class::IdConflict => matches!(store, StoreError::IdConflict(_)),
            Class::UnknownModels => matches!(store, StoreError::UnknownModels(_)),
            Class::Refused => matches!(store, StoreError::Refused(_)),
        };
        assert!(variant_matches, "{shown} became {store:?}");
    }

    #[test]
    fn lost_connections_and_busy_servers_are_transient() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        check(
            DbErr::Conn(RuntimeErr::SqlxError(SqlxError::Io(refused))),
            Class::Unavailable,
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        check(
            DbErr::Query(RuntimeErr::SqlxError(SqlxError::Io(reset))),
            Class::Unavailable,
        );
        check(
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            Class::Unavailable,
        );
        check(
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            Class::Unavailable,
        );
        check(
            DbErr::Conn(RuntimeErr::SqlxError(SqlxError::PoolTimedOut)),
            Class::Unavailable,
        );
        for code in [
            "40001", "40P01", "57P01", "57P02", "57P03", "53300", "08006", "3D000",
        ] {
            check(exec(code), Class::Unavailable);
        }
    }

    #[test]
    fn statements_postgres_refuses_are_permanent() {
        for code in [
            "23505", // unique violation
            "23503", // foreign key violation
            "23514", // check violation
            "22003", // numeric value out of range: the stored counts' doing
            "22P02", // invalid text representation
            "22023", // invalid parameter value (a NOTIFY channel name)
            "42704", // undefined object
            "42601", // syntax error
            "42P01", // undefined table
        ] {
            check(exec(code), Class::Rejected);
        }
        check(DbErr::Migration("cannot apply".to_owned()), Class::Rejected);
        check(
            DbErr::Conn(RuntimeErr::SqlxError(SqlxError::Configuration(
                "bad url".into(),
            ))),
            Class::Rejected,
        );
    }

    #[test]
    fn values_the_database_cannot_hold_are_the_datas_fault() {
        for code in ["22001", "22021", "22P05", "54000"] {
            check(exec(code), Class::Unstorable);
        }
    }

    #[test]
    fn rows_that_do_not_decode_are_corrupt() {
        check(
            DbErr::Type("a null where none may be".to_owned()),
            Class::Corrupt,
        );
        check(
            DbErr::Query(RuntimeErr::SqlxError(SqlxError::ColumnDecode {
                index: "\"successes\"".to_owned(),
                source: "not a BIGINT".into(),
            })),
            Class::Corrupt,
        );
    }

    #[test]
    fn refused_handshakes_and_logins_wait_for_a_person() {
        check(
            DbErr::Conn(RuntimeErr::SqlxError(SqlxError::Tls(
                "invalid peer certificate: UnknownIssuer".into(),
            ))),
            Class::Refused,
        );
        let handshake = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        check(
            DbErr::Conn(RuntimeErr::SqlxError(SqlxError::Io(handshake))),
            Class::Refused,
        );
        for code in ["28000", "28P01"] {
            check(exec(code), Class::Refused);
        }
        let store = StoreError::from(exec("28000"));
        assert!(store.is_refused() && !store.is_transient());
    }

    #[test]
    fn only_unavailable_is_transient() {
        assert!(!StoreError::Conflict("moved".to_owned()).is_transient());
        assert!(!StoreError::IdConflict("id".to_owned()).is_transient());
        assert!(!StoreError::Corrupt("bad".to_owned()).is_transient());
    }
}
