//! CSRF protection for the UI's forms (create and expire a silence, sign
//! in), as a signed double-submit token.
//!
//! The browser holds a random nonce in an `HttpOnly; SameSite=Strict`
//! cookie; each form carries HMAC-SHA256(process key, nonce). A POST is
//! accepted only when the form's token is the MAC of the cookie's nonce.
//! Another site can make a browser send the cookie (SameSite aside) but can
//! neither read it nor compute the MAC, so it cannot forge the form field.
//! The key is random per process: a restart invalidates open forms, which
//! costs a reload, never a silence created behind someone's back.

use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::UiError;

const NONCE_COOKIE: &str = "syncwarden_csrf";

pub(crate) struct Csrf {
    key: [u8; 32],
}

fn random_bytes() -> [u8; 32] {
    // Two v4 UUIDs: 244 bits from the OS generator (getrandom).
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

impl Csrf {
    pub(crate) fn new() -> Self {
        Csrf {
            key: random_bytes(),
        }
    }

    fn mac(&self, nonce: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(nonce.as_bytes());
        Some(mac)
    }

    /// The token to embed in a form, and the `Set-Cookie` header to send
    /// when the browser has no nonce yet.
    pub(crate) fn token_for(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        let existing = super::cookie(headers, NONCE_COOKIE)
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        let (nonce, set) = match existing {
            Some(n) => (n, None),
            None => {
                let n = hex::encode(random_bytes());
                let cookie = format!("{NONCE_COOKIE}={n}; Path=/; HttpOnly; SameSite=Strict");
                (n, HeaderValue::from_str(&cookie).ok())
            }
        };
        let token = self
            .mac(&nonce)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        (token, set)
    }

    /// Whether `token` (from the form) is the MAC of the request's nonce
    /// cookie. Compared in constant time.
    pub(crate) fn verify(&self, headers: &HeaderMap, token: &str) -> bool {
        let Some(nonce) = super::cookie(headers, NONCE_COOKIE) else {
            return false;
        };
        let Ok(given) = hex::decode(token.trim()) else {
            return false;
        };
        self.mac(&nonce)
            .is_some_and(|m| m.verify_slice(&given).is_ok())
    }
}

pub(crate) fn rejection() -> UiError {
    UiError::Forbidden(
        "This form has expired or did not come from this page. Reload the page and try again."
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn with_cookie(set: &HeaderValue) -> HeaderMap {
        let pair = set
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .unwrap_or_default()
            .to_string();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&pair).expect("cookie"),
        );
        h
    }

    #[test]
    fn a_token_verifies_only_with_its_own_nonce_and_key() {
        let csrf = Csrf::new();
        let (token, set) = csrf.token_for(&HeaderMap::new());
        let set = set.expect("a fresh nonce is set");
        let headers = with_cookie(&set);
        assert!(csrf.verify(&headers, &token));
        // The same nonce keeps the same token, and no new cookie.
        let (again, none) = csrf.token_for(&headers);
        assert_eq!(again, token);
        assert!(none.is_none());
        // No cookie, another nonce, another process key, garbage: rejected.
        assert!(!csrf.verify(&HeaderMap::new(), &token));
        let (_, other) = csrf.token_for(&HeaderMap::new());
        assert!(!csrf.verify(&with_cookie(&other.expect("set")), &token));
        assert!(!Csrf::new().verify(&headers, &token));
        assert!(!csrf.verify(&headers, "not hex"));
        assert!(!csrf.verify(&headers, ""));
    }
}
