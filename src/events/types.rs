//! The event types of the contract, and the filter a reader asks for.

use crate::{domain::Sku, store::events::Filter};

/// Every type an event can have, in families: `stock.*` and `order.*`.
pub const TYPES: &[&str] = &[
    "stock.changed",
    "stock.low",
    "stock.out",
    "stock.back",
    "stock.recovered",
    "order.placed",
    "order.paid",
    "order.shipped",
    "order.cancelled",
    "order.expired",
];

/// Parses `types=a,b,family.*` and `sku=`; an unknown type or a malformed SKU is refused with
/// a sentence for the client (the caller answers 400 `invalid_query`).
pub fn parse_filter(types: Option<&str>, sku: Option<&str>) -> Result<Filter, String> {
    let mut filter = Filter::default();
    for raw in types.unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if let Some(family) = raw.strip_suffix(".*") {
            let prefix = format!("{family}.");
            if !TYPES.iter().any(|t| t.starts_with(&prefix)) {
                return Err(format!("{raw:?} is not a family of event types (stock.* or order.*)"));
            }
            filter.families.push(prefix);
        } else if TYPES.contains(&raw) {
            filter.types.push(raw.to_owned());
        } else {
            return Err(format!("{raw:?} is not an event type; known: {}", TYPES.join(", ")));
        }
    }
    if let Some(raw) = sku {
        let sku = Sku::parse(raw).map_err(|_| format!("sku {raw:?} is not a valid SKU"))?;
        filter.sku = Some(sku.as_str().to_owned());
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_exact_types_parse_and_unknown_ones_do_not() {
        let f = parse_filter(Some("stock.*,order.paid"), None).unwrap();
        assert!(f.matches_topic("stock.low"));
        assert!(f.matches_topic("order.paid"));
        assert!(!f.matches_topic("order.placed"));
        assert!(parse_filter(Some("stock.nope"), None).is_err());
        assert!(parse_filter(Some("nope.*"), None).is_err());
        assert!(parse_filter(None, Some("bad sku")).is_err());
    }
}
