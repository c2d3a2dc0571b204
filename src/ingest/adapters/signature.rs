//! Webhook authentication: each vendor's signature scheme, checked over the
//! raw request bytes, in constant time, against every configured secret.
//!
//! Why these rules:
//! - **Raw bytes, before parsing.** A signature covers the exact bytes sent;
//!   JSON that is parsed and re-serialized differs in spacing or key order,
//!   so verifying anything but the raw body either fails for good requests or
//!   (worse) can be made to pass for altered ones.
//! - **Constant time.** Comparisons go through `Mac::verify_slice` and
//!   `subtle`, so response timing does not reveal how much of a forged
//!   signature was right. Every secret is always tried (no early exit), so
//!   timing does not reveal which secret matched either.
//! - **A list of secrets.** During rotation the old and the new secret are
//!   both valid (`webhook_secret` may be a list, SPEC §8).
//!
//! Schemes: Census `X-Signature` = base64(HMAC-SHA256(secret, body));
//! Fivetran `X-Fivetran-Signature-256` and dbt Cloud `Authorization` = hex
//! HMAC-SHA256(secret, body), any case; Standard Webhooks (the generic
//! CloudEvents route) = `v1,<base64>` signatures over `{id}.{timestamp}.{body}`
//! with a `whsec_<base64>` secret and a ±5 minute timestamp window; Airbyte
//! signs nothing and uses a path token, compared with [`token_eq`].

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::model::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks timestamp may be from now, either way: it
/// bounds how long a captured request can be replayed.
pub const STANDARD_WEBHOOK_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Standard base64 that accepts a signature with or without its `=`
/// padding: some senders strip it, and it carries no information.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook was not authenticated. The API answers all of them with
/// 401 and logs the variant (never the secret or the signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook secret is configured")]
    NoSecret,
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the webhook timestamp is more than 5 minutes from now")]
    OutsideTolerance,
    #[error("a configured webhook secret is not a valid whsec_<base64> secret")]
    InvalidSecret,
}

/// Census: `X-Signature` = base64(HMAC-SHA256(secret, raw body)).
pub fn verify_hmac_sha256_base64<I, S>(
    secrets: I,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let header = header.ok_or(SignatureError::Missing("signature"))?.trim();
    let header = header.strip_prefix("sha256=").unwrap_or(header);
    let tag = BASE64
        .decode(header)
        .map_err(|_| SignatureError::Malformed("signature"))?;
    verify_tag(secrets, &[body], &[tag])
}

/// Fivetran (`X-Fivetran-Signature-256`, seen in upper case) and dbt Cloud
/// (`Authorization`, no scheme prefix): hex HMAC-SHA256(secret, raw body),
/// any case, an optional `sha256=` prefix tolerated.
pub fn verify_hmac_sha256_hex<I, S>(
    secrets: I,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let header = header.ok_or(SignatureError::Missing("signature"))?.trim();
    let header = header.strip_prefix("sha256=").unwrap_or(header);
    let tag = hex::decode(header).map_err(|_| SignatureError::Malformed("signature"))?;
    verify_tag(secrets, &[body], &[tag])
}

/// Standard Webhooks (standardwebhooks.com), used by the generic
/// CloudEvents route: `webhook-signature` is a space-separated list of
/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being
/// the base64 part of a `whsec_<base64>` secret; `webhook-timestamp` (Unix
/// seconds) must be within [`STANDARD_WEBHOOK_TOLERANCE_MS`] of `now`.
/// Signatures of other versions in the list are skipped.
pub fn verify_standard_webhook<I, S>(
    secrets: I,
    id: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    signature_header: Option<&str>,
    now: Timestamp,
) -> Result<(), SignatureError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let id = id.ok_or(SignatureError::Missing("webhook-id"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let header = signature_header.ok_or(SignatureError::Missing("webhook-signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
    let sent_ms = seconds.saturating_mul(1000);
    if (now.0.saturating_sub(sent_ms)).abs() > STANDARD_WEBHOOK_TOLERANCE_MS {
        return Err(SignatureError::OutsideTolerance);
    }
    let tags: Vec<Vec<u8>> = header
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    if tags.is_empty() {
        return Err(SignatureError::Malformed("webhook-signature"));
    }
    let keys = secrets
        .into_iter()
        .map(|s| standard_webhook_key(s.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let prefix = format!("{id}.{}.", timestamp.trim());
    verify_tag(&keys, &[prefix.as_bytes(), body], &tags)
}

/// The key bytes of a Standard Webhooks secret (`whsec_` is optional, as in
/// the reference libraries).
pub fn standard_webhook_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64
        .decode(b64)
        .map_err(|_| SignatureError::InvalidSecret)?;
    if key.is_empty() {
        return Err(SignatureError::InvalidSecret);
    }
    Ok(key)
}

/// Constant-time equality of two tokens (the Airbyte path token). Both are
/// hashed first, so neither the content nor the length of the expected
/// token leaks through timing.
pub fn token_eq(a: &str, b: &str) -> bool {
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    bool::from(ha.as_slice().ct_eq(hb.as_slice()))
}

/// True when HMAC-SHA256 over the concatenated `parts` under any secret
/// equals any tag. Every (secret, tag) pair is tried.
fn verify_tag<I, S, T>(secrets: I, parts: &[&[u8]], tags: &[T]) -> Result<(), SignatureError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
    T: AsRef<[u8]>,
{
    let mut any_secret = false;
    let mut matched = Choice::from(0);
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.is_empty() {
            continue;
        }
        any_secret = true;
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            continue;
        };
        for part in parts {
            mac.update(part);
        }
        let expected = mac.finalize().into_bytes();
        for tag in tags {
            // `ct_eq` on slices returns early only on a length mismatch,
            // and the expected length (32) is public.
            matched |= expected.as_slice().ct_eq(tag.as_ref());
        }
    }
    if !any_secret {
        return Err(SignatureError::NoSecret);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = HmacSha256::new_from_slice(secret).expect("any key length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    const BODY: &[u8] = include_bytes!("testdata/census/webhook_sync_completed.json");

    #[test]
    fn census_base64_signatures() {
        let sig = STANDARD.encode(mac(b"new", &[BODY]));
        assert_eq!(verify_hmac_sha256_base64(["new"], BODY, Some(&sig)), Ok(()));
        // The old secret still passes during rotation, in either position.
        let old = STANDARD.encode(mac(b"old", &[BODY]));
        assert_eq!(
            verify_hmac_sha256_base64(["new", "old"], BODY, Some(&old)),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_base64(["old", "new"], BODY, Some(&sig)),
            Ok(())
        );
        // Without padding, too.
        assert_eq!(
            verify_hmac_sha256_base64(["new"], BODY, Some(sig.trim_end_matches('='))),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_base64(["other"], BODY, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_base64(["new"], BODY, None),
            Err(SignatureError::Missing("signature"))
        );
        assert_eq!(
            verify_hmac_sha256_base64(["new"], BODY, Some("%%%")),
            Err(SignatureError::Malformed("signature"))
        );
        let none: [&str; 0] = [];
        assert_eq!(
            verify_hmac_sha256_base64(none, BODY, Some(&sig)),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify_hmac_sha256_base64([""], BODY, Some(&sig)),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn a_reserialized_body_fails() {
        let sig = STANDARD.encode(mac(b"s", &[BODY]));
        let v: serde_json::Value = serde_json::from_slice(BODY).expect("json");
        let compact = serde_json::to_vec(&v).expect("json");
        assert_ne!(compact, BODY);
        assert_eq!(
            verify_hmac_sha256_base64(["s"], &compact, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn fivetran_and_dbt_hex_signatures_in_any_case() {
        let body = include_bytes!("testdata/fivetran/webhook_sync_end_failure.json");
        let lower = hex::encode(mac(b"ft", &[body]));
        let upper = lower.to_uppercase();
        assert_eq!(verify_hmac_sha256_hex(["ft"], body, Some(&upper)), Ok(()));
        assert_eq!(verify_hmac_sha256_hex(["ft"], body, Some(&lower)), Ok(()));
        assert_eq!(
            verify_hmac_sha256_hex(["ft"], body, Some(&format!("sha256={lower}"))),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_hex(["rotated", "ft"], body, Some(&upper)),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_hex(["ft"], &body[1..], Some(&upper)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_hex(["ft"], body, Some(&upper[..40])),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_hex(["ft"], body, Some("zz")),
            Err(SignatureError::Malformed("signature"))
        );
        assert_eq!(
            verify_hmac_sha256_hex(["ft"], body, None),
            Err(SignatureError::Missing("signature"))
        );
    }

    #[test]
    fn standard_webhooks_sign_id_timestamp_and_body() {
        let key = b"0123456789abcdef0123456789abcdef";
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let body = br#"{"specversion":"1.0"}"#;
        let now = Timestamp(1_741_068_000_000);
        let ts = "1741068000";
        let sig = STANDARD.encode(mac(key, &[b"msg_1.", ts.as_bytes(), b".", body]));
        let header = format!("v1a,ignored v1,{}", STANDARD.encode([0u8; 32])) + " v1," + &sig;

        let check = |secrets: &[&str], id, t, b: &[u8], h: Option<&str>, now| {
            verify_standard_webhook(secrets, id, t, b, h, now)
        };
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now
            ),
            Ok(())
        );
        // Rotation: an unrelated new secret first, the signing one second.
        let other = format!("whsec_{}", STANDARD.encode(b"another key"));
        assert_eq!(
            check(
                &[other.as_str(), secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now
            ),
            Ok(())
        );
        // Within ±5 minutes passes; beyond fails either way.
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now.plus_millis(300_000)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now.plus_millis(300_001)
            ),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now.plus_millis(-300_001)
            ),
            Err(SignatureError::OutsideTolerance)
        );
        // The id and the timestamp are signed.
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_2"),
                Some(ts),
                body,
                Some(&header),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some("1741068001"),
                body,
                Some(&header),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                b"{}",
                Some(&header),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&[secret.as_str()], None, Some(ts), body, Some(&header), now),
            Err(SignatureError::Missing("webhook-id"))
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some("soon"),
                body,
                Some(&header),
                now
            ),
            Err(SignatureError::Malformed("webhook-timestamp"))
        );
        assert_eq!(
            check(
                &[secret.as_str()],
                Some("msg_1"),
                Some(ts),
                body,
                Some("v2,abc"),
                now
            ),
            Err(SignatureError::Malformed("webhook-signature"))
        );
        assert_eq!(
            check(
                &["whsec_!!"],
                Some("msg_1"),
                Some(ts),
                body,
                Some(&header),
                now
            ),
            Err(SignatureError::InvalidSecret)
        );
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_eq("s3cr3t-token", "s3cr3t-token"));
        assert!(!token_eq("s3cr3t-token", "s3cr3t-tokem"));
        assert!(!token_eq("s3cr3t-token", "s3cr3t"));
        assert!(!token_eq("s3cr3t-token", ""));
    }

    proptest! {
        #[test]
        fn a_signed_body_verifies_and_any_change_fails(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<prop::sample::Index>(),
        ) {
            let tag = mac(&secret, &[&body]);
            let b64 = STANDARD.encode(&tag);
            let hx = hex::encode(&tag);
            prop_assert_eq!(verify_hmac_sha256_base64([&secret], &body, Some(&b64)), Ok(()));
            prop_assert_eq!(verify_hmac_sha256_hex([&secret], &body, Some(&hx)), Ok(()));
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 0x01;
                prop_assert_eq!(verify_hmac_sha256_base64([&secret], &changed, Some(&b64)), Err(SignatureError::Mismatch));
                prop_assert_eq!(verify_hmac_sha256_hex([&secret], &changed, Some(&hx)), Err(SignatureError::Mismatch));
            }
            // HMAC pads keys with zeros, so the other key must differ in a
            // non-zero byte to be a different key.
            let mut other = secret.clone();
            other.push(1);
            prop_assert_eq!(verify_hmac_sha256_hex([&other], &body, Some(&hx)), Err(SignatureError::Mismatch));
        }
    }
}
