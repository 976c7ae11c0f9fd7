//! Webhook secrets are stored sealed (XChaCha20-Poly1305) with a key derived from
//! `STOCKCART_SECRET_KEY` (or, when unset, from the admin token), which lives in the
//! replicas' environment and never in the database: a dump of the database alone cannot sign.

use chacha20poly1305::{
    aead::{Aead, KeyInit},
    Key, XChaCha20Poly1305, XNonce,
};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

const NONCE: usize = 24;

impl Sealer {
    /// Any long random string is fine: it is hashed into the 256-bit key.
    pub fn new(key_material: &str) -> Sealer {
        let key = Sha256::new().chain_update(b"stockcart webhook secrets\0").chain_update(key_material).finalize();
        Sealer { cipher: XChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    /// A random nonce, then the ciphertext and its tag.
    pub fn seal(&self, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        getrandom::getrandom(&mut nonce).expect("the OS random number generator works");
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(XNonce::from_slice(&nonce), secret).expect("sealing cannot fail"));
        out
    }

    /// `None` when the sealed bytes were not sealed with this key (a replica started with
    /// another `STOCKCART_SECRET_KEY`) or were tampered with.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE);
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_it_sealed_and_nothing_sealed_with_another_key() {
        let a = Sealer::new("key one, long enough");
        let sealed = a.seal(b"secret bytes");
        assert_ne!(&sealed[NONCE..], b"secret bytes");
        assert_eq!(a.open(&sealed).unwrap(), b"secret bytes");
        assert!(Sealer::new("another key entirely").open(&sealed).is_none());
    }
}
