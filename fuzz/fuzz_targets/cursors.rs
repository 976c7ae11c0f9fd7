//! The cursors a client sends back (`?after=` of the order lists, the stock report and the
//! event log, `Last-Event-ID`): arbitrary text never panics, and an accepted cursor names a
//! position the database can hold and reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stockcart::{events::types::parse_filter, extract::QueryParams, reports::StockCursor, routes};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok((at, id)) = routes::orders::parse_cursor(text) {
        let micros = at.timestamp_micros();
        // 1970 to 9999: what `timestamptz` holds and this service can have written.
        assert!((0..=253_402_300_799_999_999).contains(&micros));
        assert_eq!(routes::orders::parse_cursor(&format!("{micros}_{id}")).ok(), Some((at, id)));
    }
    if let Some(cursor) = StockCursor::parse(text) {
        assert_eq!(StockCursor::parse(&cursor.encode()), Some(cursor));
    }
    if let Ok(Some(id)) = routes::events::parse_event_id(Some(text)) {
        assert!(id >= 0);
    }
    // The filters of the event list and streams, from two halves of the input.
    let (types, sku) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    let _ = parse_filter(Some(types), Some(sku));

    // A whole query string, as the list endpoints read it.
    if let Ok(query) = QueryParams::from_query(text) {
        if let Ok(limit) = query.int_in("limit", 1..=200, 50) {
            assert!((1..=200).contains(&limit));
        }
    }
});
