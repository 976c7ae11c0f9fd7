//! Domain types that parse, rather than validate: holding a `Sku` proves it is well formed.
//!
//! A parse failure is an `Invalid`: the `Problem` naming the rule it broke and a sentence
//! for humans. The HTTP layer turns it into a 422 problem (see `error.rs`).

mod money;
mod quantity;
mod sku;
mod token;
mod version;

pub use money::{Currency, Money, MAX_PRICE};
pub use quantity::{Quantity, MAX_CART_LINES, MAX_LINE_QUANTITY};
pub use sku::Sku;
pub use token::{SessionToken, TokenHash};
pub use version::ExpectedVersion;

use crate::problem::Problem;

/// A rule broken by client input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub problem: Problem,
    pub detail: String,
}

impl Invalid {
    pub fn new(problem: Problem, detail: impl Into<String>) -> Invalid {
        Invalid { problem, detail: detail.into() }
    }
}

/// A JSON integer member. Integers must be written as integers: `1.0` and `1e2` are
/// `invalid_number`. A domain rule, not an HTTP one: prices inside a body parse with it too.
pub fn int_value(value: &serde_json::Value, name: &str, code: Problem) -> Result<i64, Invalid> {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(Invalid::new(code, format!("{name} is out of range")))
            } else {
                Err(Invalid::new(
                    Problem::InvalidNumber,
                    format!("{name} must be written as an integer, without a fraction or exponent"),
                ))
            }
        }
        _ => Err(Invalid::new(code, format!("{name} must be an integer"))),
    }
}

/// Largest stock quantity (`on_hand`) a level may hold; keeps every sum far from overflow.
pub const MAX_ON_HAND: i64 = 1_000_000_000_000;
/// Largest magnitude of one adjustment.
pub const MAX_DELTA: i64 = 1_000_000_000;

/// Movement reasons an admin may give for an adjustment.
pub const ADJUSTMENT_REASONS: &[&str] = &["restock", "correction", "shrinkage", "return"];

/// A free-text reference (purchase order, RMA number, payment id): 1 to 200 characters.
pub fn parse_reference(raw: &str) -> Result<String, Invalid> {
    short_text(
        raw,
        Blank::Allowed,
        Problem::InvalidReference,
        "reference must be 1 to 200 characters without control characters",
    )
}

/// A product name: 1 to 200 characters, not blank.
pub fn parse_product_name(raw: &str) -> Result<String, Invalid> {
    short_text(
        raw,
        Blank::Refused,
        Problem::InvalidName,
        "name must be 1 to 200 characters, not blank, without control characters",
    )
}

/// A customer id vouched for by the storefront's backend: 1 to 200 characters.
pub fn parse_customer_id(raw: &str) -> Result<String, Invalid> {
    short_text(raw, Blank::Refused, Problem::InvalidCustomerId, "customer_id must be 1 to 200 characters")
}

enum Blank {
    Allowed,
    Refused,
}

/// The one rule behind every short text field (1 to 200 characters, no control characters,
/// and for some, not only whitespace); each field refuses with its own problem.
fn short_text(raw: &str, blank: Blank, problem: Problem, detail: &str) -> Result<String, Invalid> {
    let count = raw.chars().count();
    let blank = matches!(blank, Blank::Refused) && raw.trim().is_empty();
    if count == 0 || count > 200 || blank || raw.chars().any(char::is_control) {
        return Err(Invalid::new(problem, detail));
    }
    Ok(raw.to_owned())
}
