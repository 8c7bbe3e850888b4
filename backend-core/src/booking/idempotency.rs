//! Idempotency-Key handling that needs no database: key validation and request fingerprints.
//!
//! WHAT: [`request_hash`] fingerprints a JSON body canonically (keys sorted by serde_json's
//! BTreeMap-backed `Value`, whitespace ignored), so a retry of the same request matches even if
//! the client re-serialised it; [`check_key`] enforces the key's length and character limits.
//! The transactional part (advisory lock, lookup, insert) lives in `transaction.rs`.
//!
//! NOT MODELLED: per-principal key scopes (no authentication); pruning runs only when called.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::db::{Conn, DbError, SqlValue};
use crate::error::Error;

/// SHA-256 (hex) of the canonical form of a JSON value.
pub fn request_hash(body: &serde_json::Value) -> String {
    // serde_json's default `Map` is a BTreeMap, so `to_vec` emits keys in sorted order.
    let canonical = serde_json::to_vec(body).expect("a serde_json::Value always serialises");
    let digest = Sha256::digest(&canonical);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Checks an Idempotency-Key header value: 1..=`chars_max` visible ASCII characters.
pub fn check_key(key: &str, chars_max: usize) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid("Idempotency-Key", "must not be empty"));
    }
    if key.len() > chars_max {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("{} characters, more than the {chars_max} allowed", key.len()),
        ));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid("Idempotency-Key", "only visible ASCII characters allowed"));
    }
    Ok(())
}

/// Deletes keys created before `before` (retention ≥ 24 h); returns how many went.
pub async fn prune(conn: &mut dyn Conn, before: DateTime<Utc>) -> Result<u64, DbError> {
    let rows = conn
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &[SqlValue::Timestamp(before)],
        )
        .await?;
    Ok(rows.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace_but_not_values() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [1, 2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b":[1,2],"a":1 }"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a": 2, "b": [1, 2]}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
        assert_eq!(request_hash(&a).len(), 64);
        // Lower-case hex of SHA-256, as `format!("{byte:02x}")` per byte wrote it.
        let empty = serde_json::Value::String(String::new());
        assert_eq!(
            request_hash(&empty),
            "12ae32cb1ec02d01eda3581b127c1fee3b0dc53572ed6baf239721a03d82e126"
        );
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_key("8e03978e-40d5-43e8-bc93-6894a57f9324", 255).is_ok());
        assert!(check_key("", 255).is_err());
        assert!(check_key(&"k".repeat(256), 255).is_err());
        assert!(check_key("has space", 255).is_err());
    }
}
