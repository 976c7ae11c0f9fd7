//! The domain parsers on arbitrary text: they never panic, and what they accept keeps their
//! promise (a `Sku` is 1 to 64 characters of its alphabet, a price is in range, ...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stockcart::{
    domain::{
        int_value, parse_customer_id, parse_product_name, parse_reference, Currency, ExpectedVersion, Money, Quantity,
        SessionToken, Sku, MAX_LINE_QUANTITY, MAX_PRICE,
    },
    problem::Problem,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(sku) = Sku::parse(text) {
        let s = sku.as_str();
        assert!((1..=64).contains(&s.len()));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        assert_eq!(Sku::parse(s).ok(), Some(sku.clone()));
    }
    if let Ok(currency) = Currency::parse(text) {
        assert!(currency.as_str().len() == 3 && currency.as_str().bytes().all(|b| b.is_ascii_uppercase()));
    }
    if SessionToken::is_well_formed(text) {
        assert_eq!(text.len(), 67);
    }
    let expected = ExpectedVersion::parse(text);
    if let ExpectedVersion::OneOf(versions) = &expected {
        assert!(versions.iter().all(|v| expected.matches(*v)));
    }
    for parse in [parse_reference, parse_product_name, parse_customer_id] {
        if let Ok(s) = parse(text) {
            assert!((1..=200).contains(&s.chars().count()) && !s.chars().any(char::is_control));
        }
    }

    // Numbers arrive inside JSON: an integer member, a quantity, a price.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Ok(n) = int_value(&value, "n", Problem::InvalidQuantity) {
            assert_eq!(value.as_i64(), Some(n));
            match Quantity::parse(n) {
                Ok(q) => assert!((1..=MAX_LINE_QUANTITY).contains(&i64::from(q.get())) && i64::from(q.get()) == n),
                Err(e) => assert_eq!(e.problem, Problem::InvalidQuantity),
            }
        }
        let eur = Currency::parse("EUR").expect("EUR is a currency");
        if let Ok(price) = Money::parse_price(Some(&value), &eur) {
            assert!((0..=MAX_PRICE).contains(&price.amount) && price.currency == "EUR");
        }
    }
});
