//! Writes: the consumer's exactly-once batch transaction.
