//! The one place a value crosses between its domain type and its column:
//! unsigned counts and versions to and from BIGINT, the prior to JSONB, the
//! grid size to INTEGER. A value that does not fit either way is
//! [`StoreError::Corrupt`], never a panic or a silent wrap.

use domain::bayes::GridSize;
use domain::prior::Prior;

use super::StoreError;

/// A count, version or limit as a BIGINT.
pub(super) fn to_i64(x: u64) -> Result<i64, StoreError> {
    i64::try_from(x).map_err(|_| StoreError::Corrupt(format!("{x} does not fit a BIGINT")))
}

/// A stored count or version, which the schema keeps non-negative.
pub(super) fn to_u64(x: i64) -> Result<u64, StoreError> {
    u64::try_from(x).map_err(|_| StoreError::Corrupt(format!("negative count {x} in the database")))
}

/// A prior in its stored form (its serde form, as JSONB).
pub(super) fn prior_json(prior: &Prior) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(prior).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A grid size as an INTEGER.
pub(super) fn grid_size_i32(size: u32) -> Result<i32, StoreError> {
    i32::try_from(size).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The stored grid size of model `of`, which must still be a valid one.
pub(super) fn grid_size(stored: i32, of: &str) -> Result<GridSize, StoreError> {
    u32::try_from(stored)
        .ok()
        .and_then(|g| GridSize::parse(g).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("grid size {stored} of {of}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_do_not_fit_their_column_are_corrupt_not_wrapped() {
        assert_eq!(to_i64(7).ok(), Some(7));
        assert!(matches!(to_i64(u64::MAX), Err(StoreError::Corrupt(_))));
        assert_eq!(to_u64(7).ok(), Some(7));
        assert!(matches!(to_u64(-1), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            grid_size_i32(u32::MAX),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(grid_size(1, "m"), Err(StoreError::Corrupt(_))));
        assert!(matches!(grid_size(-5, "m"), Err(StoreError::Corrupt(_))));
        assert_eq!(grid_size(50, "m").ok().map(GridSize::get), Some(50));
    }
}
