//! Reports as `text/csv` (RFC 4180, by the `csv` crate): a header row of the JSON member
//! names, then one row per item with the same values as the JSON, so a spreadsheet and an API
//! client read the same numbers. Null is an empty field; Money is written as its amount, with
//! its currency in a column of its own (`currency`).

use serde_json::Value;

/// The JSON members of `items`, in `columns` order, as CSV.
pub fn render(columns: &[&str], items: &[Value]) -> String {
    let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    // Writing to memory cannot fail, and every row has as many fields as the header.
    out.write_record(columns).expect("in memory");
    for item in items {
        out.write_record(columns.iter().map(|c| field(item, c))).expect("in memory");
    }
    String::from_utf8(out.into_inner().expect("in memory")).expect("written from UTF-8 strings")
}

fn field(item: &Value, column: &str) -> String {
    let value = match (column, item.get(column)) {
        ("currency", None) => item.pointer("/revenue/currency"),
        (_, Some(Value::Object(money))) => money.get("amount"),
        (_, v) => v,
    };
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn quotes_as_rfc_4180_asks_and_writes_money_as_amount_and_currency() {
        let items =
            [json!({"sku": "A", "name": "Tea, \"green\"", "revenue": {"amount": 1999, "currency": "EUR"}, "x": null})];
        let text = super::render(&["sku", "name", "revenue", "currency", "x"], &items);
        assert_eq!(text, "sku,name,revenue,currency,x\r\nA,\"Tea, \"\"green\"\"\",1999,EUR,\r\n");
    }
}
