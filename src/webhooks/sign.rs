//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`,
//! keyed with the secret's decoded bytes; several space-separated while a rotated secret
//! still signs.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A new secret: its 32 random bytes, and how the API shows it (`whsec_<base64>`).
pub fn new_secret() -> ([u8; 32], String) {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).expect("the OS random number generator works");
    let shown = format!("whsec_{}", STANDARD.encode(raw));
    (raw, shown)
}

/// How the API shows a secret it holds.
pub fn show(raw: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(raw))
}

pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per secret that signs now.
pub fn header(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    secrets.iter().map(|s| signature(s, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test suite.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
