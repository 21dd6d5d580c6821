//! Reads: the queries the model service answers from.
