use crate::problem::Problem;
use std::fmt;

use super::Invalid;

/// A stock-keeping unit: 1 to 64 characters of `[A-Za-z0-9._-]`.
///
/// Read back from the database without parsing again (`sku AS "sku: Sku"`): every `sku`
/// column is `products.sku` or references it, and `products_sku_format` checks the same rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Sku, Invalid> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Sku(raw.to_owned()))
        } else {
            Err(Invalid::new(Problem::InvalidSku, "sku must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::borrow::Borrow<str> for Sku {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(Sku::parse("ABC-123_x.y").is_ok());
        assert!(Sku::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "a b", "ä", "a/b", "a%20", &"a".repeat(65)] {
            assert_eq!(Sku::parse(bad).unwrap_err().problem, Problem::InvalidSku, "{bad:?}");
        }
    }
}
