use sha2::{Digest, Sha256};

/// An opaque session token: 256 bits from the operating system's CSPRNG, hex encoded.
/// Only its SHA-256 hash is stored, so a database leak does not leak live sessions.
pub struct SessionToken(String);

/// What the database keeps of a token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(pub Vec<u8>);

impl SessionToken {
    pub fn generate() -> SessionToken {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
        SessionToken(format!("sc_{}", hex(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `raw` has the form `generate` gives (it may still be unknown or revoked).
    pub fn is_well_formed(raw: &str) -> bool {
        raw.strip_prefix("sc_")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).to_vec())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 3 + 64);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
        assert_eq!(a.hash().0.len(), 32);
        assert!(SessionToken::is_well_formed(a.as_str()));
        assert!(!SessionToken::is_well_formed(&a.as_str()[1..]) && !SessionToken::is_well_formed("sc_"));
        assert!(!SessionToken::is_well_formed(&a.as_str().to_uppercase()));
    }
}
