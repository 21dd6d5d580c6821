//! Where in a model's or an experiment's history a question is asked:
//! `?version=`, `?at=`, `?since=` and `?window=` read into a [`TimeTravel`],
//! and the checks every point of history shares.

use chrono::{DateTime, Utc};
use domain::bayes::Counts;

use crate::error::ApiError;

/// `?version=` or `?at=`: answer as of that point in history; `?since=` or
/// `?window=`: from the observations committed after a time only.
#[derive(Debug, Clone, Default)]
pub struct TimeTravel {
    /// As of this version (0: the prior alone, before any data).
    pub version: Option<u64>,
    /// As of this time (RFC 3339, e.g. `2025-01-31T12:00:00Z`): the last
    /// version applied at or before it.
    pub at: Option<String>,
    /// Only the observations committed after this time (RFC 3339).
    pub since: Option<String>,
    /// Only the observations committed within this span before `at` (or
    /// now): `7d`, `24h`, `90m`.
    pub window: Option<String>,
}

impl TimeTravel {
    pub fn new(version: Option<u64>, at: Option<String>) -> Self {
        Self {
            version,
            at,
            ..Self::default()
        }
    }

    /// With a time window too.
    pub fn windowed(mut self, since: Option<String>, window: Option<String>) -> Self {
        self.since = since;
        self.window = window;
        self
    }

    /// `?at=` read, if given.
    pub fn at_time(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.at
            .as_deref()
            .map(|at| parse_time("at", at))
            .transpose()
    }

    /// Where the window starts, if one was asked for: `since`, or `window`
    /// before `at` (now when `at` is absent); with both, the later start.
    pub fn window_start(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        let since = self
            .since
            .as_deref()
            .map(|since| parse_time("since", since))
            .transpose()?;
        let by_span = match &self.window {
            Some(window) => {
                let span = parse_window(window)?;
                let end = self.at_time()?.unwrap_or_else(Utc::now);
                // Before year 1 nothing was committed (and Postgres's
                // timestamps end at 4713 BC): start there at the earliest.
                let earliest = DateTime::<Utc>::from_timestamp(-62_135_596_800, 0)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                Some(
                    end.checked_sub_signed(span)
                        .map_or(earliest, |t| t.max(earliest)),
                )
            }
            None => None,
        };
        match (since, by_span) {
            (Some(a), Some(b)) => Ok(Some(a.max(b))),
            (a, b) => Ok(a.or(b)),
        }
    }
}

/// A version asked for (`?version=`, `?after=`) that Postgres's BIGINT can
/// hold: versions are stored so.
pub fn check_version(name: &str, version: Option<u64>) -> Result<(), ApiError> {
    match version.filter(|v| i64::try_from(*v).is_err()) {
        Some(v) => Err(ApiError::invalid(format!(
            "{name} must be at most {}, got {v}",
            i64::MAX
        ))),
        None => Ok(()),
    }
}

/// The counts committed between two points of one model: `end`'s
/// cumulative counts minus `start`'s. A window that starts after the point
/// answered holds nothing.
pub fn window_counts(end: Counts, start: Counts) -> Counts {
    end.successes
        .checked_sub(start.successes)
        .zip(end.failures.checked_sub(start.failures))
        .map_or(Counts::ZERO, |(s, f)| Counts::new(s, f))
}

/// A window such as `7d`, `24h` or `90m`: a whole number from 1 to 999999
/// and one unit, `s`, `m` (minutes), `h`, `d` or `w`; the OpenAPI document
/// declares the same as the pattern `^[1-9][0-9]{0,5}[smhdw]$`, and
/// anything else is refused, so the schema and the service agree.
fn parse_window(raw: &str) -> Result<chrono::Duration, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "`window` must be a whole number from 1 to 999999 and a unit (s, m, h, d or w), \
             such as 7d, 24h or 90m; got {raw:?}"
        ))
    };
    let unit = raw.chars().last().ok_or_else(invalid)?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    let valid_digits = (1..=6).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !valid_digits {
        return Err(invalid());
    }
    let n: i64 = digits.parse().map_err(|_| invalid())?;
    match unit {
        's' => Ok(chrono::Duration::seconds(n)),
        'm' => Ok(chrono::Duration::minutes(n)),
        'h' => Ok(chrono::Duration::hours(n)),
        'd' => Ok(chrono::Duration::days(n)),
        'w' => Ok(chrono::Duration::weeks(n)),
        _ => Err(invalid()),
    }
}

/// RFC 3339. A `+` of an offset arrives as a space when the client did not
/// percent-encode it; read it back as `+`.
fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let fixed = raw.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&fixed)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::invalid(format!("`{name}` must be an RFC 3339 time: {e}")))
}
