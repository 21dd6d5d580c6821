//! `?limit=` of every paginated route of both services: 1 to [`MAX_PAGE`]
//! items, [`DEFAULT_PAGE`] when not given.

/// Items per page unless `?limit=` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;
/// The most items a page holds.
pub const MAX_PAGE: u32 = 1_000;

/// `?limit=` checked; the error is the message for the service's 422
/// `invalid_parameter`.
pub fn page_limit(raw: Option<u32>) -> Result<u32, String> {
    let limit = raw.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_one_to_the_most_and_defaults_to_a_hundred() {
        assert_eq!(page_limit(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_limit(Some(1)), Ok(1));
        assert_eq!(page_limit(Some(MAX_PAGE)), Ok(MAX_PAGE));
        for bad in [0, MAX_PAGE + 1] {
            let message = page_limit(Some(bad)).unwrap_err();
            assert!(message.contains("limit"), "{message}");
        }
    }
}
