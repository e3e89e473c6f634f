//! Proving a delivery came from GitHub: `X-Hub-Signature-256` is the
//! HMAC-SHA256 of the raw body under the webhook secret, hex-encoded.
//! Kept apart from routing so that nothing in a payload is interpreted by
//! code that runs before this check has passed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::errors::WebhookError;

/// Checks `X-Hub-Signature-256` (`header`) against the raw `body`.
///
/// The comparison is constant-time (`Mac::verify_slice`), so response timing
/// does not reveal how much of a forged digest was right. An empty secret is
/// refused rather than used: HMAC with an empty key is something anyone can
/// compute.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(WebhookError::MissingSignature)?;
    let digest_hex = header
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature {
            reason: "it does not start with `sha256=`",
        })?;
    let expected = decode_hex_digest(digest_hex)?;
    // HMAC accepts keys of any length, so this cannot fail; mapping the error
    // keeps the function free of panics all the same.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::NoSecret)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::SignatureMismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`: for tests,
/// local e2e scripts and tools that replay deliveries against `serve`.
pub fn signature_header(secret: &[u8], body: &[u8]) -> String {
    // Any key length is valid for HMAC; an empty one yields the empty-key MAC,
    // which `verify_signature` refuses anyway.
    let digest = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes()
        }
        Err(_) => return String::from("sha256="),
    };
    format!("sha256={}", hex::encode(digest))
}

/// Decodes the 64 hex digits of a SHA-256 digest (either case).
fn decode_hex_digest(digest: &str) -> Result<[u8; 32], WebhookError> {
    if digest.len() != 64 {
        return Err(WebhookError::MalformedSignature {
            reason: "the digest is not 64 hex digits long",
        });
    }
    let mut out = [0u8; 32];
    // With the length right, the only error left is a non-hex character
    // (a multi-byte one included: `hex` works on bytes).
    hex::decode_to_slice(digest, &mut out).map_err(|_| WebhookError::MalformedSignature {
        reason: "the digest contains a character that is not a hex digit",
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        signature_header(secret, body)
    }

    #[test]
    fn hex_digest_decodes_both_cases() {
        let lower = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let upper = lower.to_ascii_uppercase();
        assert_eq!(decode_hex_digest(lower), decode_hex_digest(&upper));
        let bytes = decode_hex_digest(lower).unwrap();
        assert_eq!(bytes[0], 0x75);
        assert_eq!(bytes[31], 0x17);
    }

    #[test]
    fn hex_digest_rejects_bad_input() {
        let (g64, z63, z65) = ("g".repeat(64), "0".repeat(63), "0".repeat(65));
        let cases: [&str; 5] = ["", "75", &g64, &z63, &z65];
        for bad in cases {
            assert!(matches!(
                decode_hex_digest(bad),
                Err(WebhookError::MalformedSignature { .. })
            ));
        }
        let reason = |digest: &str| match decode_hex_digest(digest) {
            Err(WebhookError::MalformedSignature { reason }) => reason,
            other => panic!("{digest:?} must be malformed, got {other:?}"),
        };
        assert!(reason(&z63).contains("64 hex digits long"));
        assert!(reason(&g64).contains("not a hex digit"));
        assert!(reason(&"é".repeat(32)).contains("not a hex digit"));
        // Multi-byte characters must not split a pair or panic.
        assert!(decode_hex_digest(&"é".repeat(32)).is_err());
    }

    #[test]
    fn empty_secret_is_refused_even_with_a_matching_signature() {
        let header = sign(b"", b"{}");
        assert_eq!(
            verify_signature(b"", b"{}", Some(&header)),
            Err(WebhookError::NoSecret)
        );
    }

    #[test]
    fn signature_header_whitespace_is_tolerated() {
        let header = format!("  {}  ", sign(b"k", b"body"));
        assert_eq!(verify_signature(b"k", b"body", Some(&header)), Ok(()));
        assert_eq!(
            verify_signature(b"k", b"body", Some("   ")),
            Err(WebhookError::MissingSignature)
        );
    }
}
