use crate::problem::Problem;
use serde::Serialize;

use super::Invalid;

/// Largest unit price, in minor units; a cart's subtotal then stays far below `i64::MAX`.
pub const MAX_PRICE: i64 = 1_000_000_000_000;

/// An ISO 4217 code: three capital letters.
///
/// Read back from the database without parsing again (`AS "currency: Currency"`): prices are
/// written only from a parsed `Currency`, and `products_currency_format` checks the same rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Currency, Invalid> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(raw.to_owned()))
        } else {
            Err(Invalid::new(Problem::InvalidCurrency, "currency must be three capital letters, like EUR"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `{"amount": 1999, "currency": "EUR"}`: an integer amount in minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Money {
        Money { amount, currency }
    }
}

impl Money {
    /// Parses a price for this deployment: an integer amount of minor units in `currency`.
    pub fn parse_price(value: Option<&serde_json::Value>, currency: &Currency) -> Result<Money, Invalid> {
        let invalid = || {
            Invalid::new(
                Problem::InvalidPrice,
                "price must be {\"amount\": <integer minor units>, \"currency\": \"EUR\"}",
            )
        };
        let fields = value.and_then(|v| v.as_object()).ok_or_else(invalid)?;
        let amount = fields.get("amount").ok_or_else(invalid)?;
        let amount = super::int_value(amount, "price.amount", Problem::InvalidPrice)?;
        if !(0..=MAX_PRICE).contains(&amount) {
            return Err(Invalid::new(Problem::InvalidPrice, format!("price.amount must be 0 to {MAX_PRICE}")));
        }
        let code = fields.get("currency").and_then(|c| c.as_str()).ok_or_else(invalid)?;
        if code != currency.as_str() {
            return Err(Invalid::new(
                Problem::CurrencyMismatch,
                format!("this deployment sells in {}; the price is in {code:?}", currency.as_str()),
            ));
        }
        Ok(Money::new(amount, currency.clone()))
    }
}
