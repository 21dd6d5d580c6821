//! The API keys `/keys` lists, creates and revokes: the store's key table,
//! with every replica told at once through `auth.notify_channel`.

use platform::store;

/// A key as stored, a key to store, and how a creation went.
pub use platform::store::{KeyCreated, KeyRecord, NewKey};

use super::timed;
use crate::error::ApiError;
use crate::state::AppState;

/// The keys in force.
pub async fn in_force(state: &AppState) -> Result<Vec<KeyRecord>, ApiError> {
    timed("keys_in_force", store::keys_in_force(state.db())).await
}

/// Creates a key, unless its name is taken or `auth.max_keys` are in force.
pub async fn create(state: &AppState, new: &NewKey<'_>) -> Result<KeyCreated, ApiError> {
    let auth = state.auth();
    timed(
        "create_key",
        store::create_key(state.db(), new, auth.max_keys, &auth.notify_channel),
    )
    .await
}

/// Revokes the key `id`; `None` when no key in force has it.
pub async fn revoke(state: &AppState, id: &str) -> Result<Option<KeyRecord>, ApiError> {
    timed(
        "revoke_key",
        store::revoke_key(state.db(), id, &state.auth().notify_channel),
    )
    .await
}
