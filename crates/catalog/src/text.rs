//! The catalog's small text forms: names as the configuration allows
//! them, and bytes as hex.

use crate::CatalogError;

/// The longest name of a namespace or an app.
const MAX_NAME: usize = 64;

/// Checks a name, as `what` (such as `namespace` or `app name`): 1 to 64
/// letters, digits, `.`, `_` and `-`, as app names in the configuration.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), CatalogError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "{what} `{name}` is not a name: use 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`"
        )))
    }
}

/// `bytes` as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
