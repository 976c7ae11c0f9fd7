use super::Invalid;
use crate::problem::Problem;

pub const MAX_LINE_QUANTITY: i64 = 999;
pub const MAX_CART_LINES: i64 = 100;

/// The quantity of one cart or order line: 1 to 999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i32);

impl Quantity {
    pub fn parse(n: i64) -> Result<Quantity, Invalid> {
        if (1..=MAX_LINE_QUANTITY).contains(&n) {
            Ok(Quantity(n as i32))
        } else {
            Err(Invalid::new(Problem::InvalidQuantity, format!("quantity must be 1 to {MAX_LINE_QUANTITY}")))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(999).is_ok());
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(1000).is_err());
        assert!(Quantity::parse(-1).is_err());
    }
}
