//! The reports' part of the OpenAPI document (`openapi.rs` adds it): their schemas, query
//! parameters and the CSV alternative of every report.

use serde_json::{json, Value};

use super::{MOVEMENT_COLUMNS, RESERVATION_COLUMNS, STOCK_COLUMNS, TOP_COLUMNS};

pub const WINDOW: &str = "a duration like 7d, 12h (default 30d, at most 366d); sums cover whole UTC hours from the top of the hour that long ago, rates divide by the window as given";

pub fn schemas() -> Value {
    let int = json!({ "type": "integer", "format": "int64" });
    let time = json!({ "type": "string", "format": "date-time" });
    json!({
        "StockReport": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/StockReportItem" } },
            "next": { "type": "string", "nullable": true, "description": "cursor of the next page, for ?after=" } } },
        "StockReportItem": { "type": "object", "properties": {
            "sku": { "type": "string" }, "name": { "type": "string" }, "on_hand": int, "reserved": int, "available": int,
            "status": { "type": "string", "enum": ["in_stock", "low", "out"] },
            "units_sold": { "type": "integer", "description": "units of orders placed in the window and not cancelled or expired (sold or still open)" },
            "units_received": { "type": "integer", "description": "positive on_hand adjustments with reason restock or return, in the window" },
            "velocity_per_day": { "type": "number", "description": "units_sold / window days" },
            "days_of_cover": { "type": "number", "nullable": true, "description": "available / velocity_per_day, at most 365; null when velocity is 0" },
            "sell_through": { "type": "number", "nullable": true, "description": "units_sold / (units_sold + available); null when both are 0" },
            "stockout_seconds": { "type": "integer", "description": "whole seconds within the window with available at 0 (from the ledger's moments of reaching and leaving 0; a new SKU is out until its first stock)" },
            "last_movement_at": { "type": "string", "format": "date-time", "nullable": true } } },
        "MovementReport": { "type": "object", "properties": {
            "items": { "type": "array", "description": "buckets that saw a movement, oldest first", "items": { "type": "object", "properties": {
                "bucket_start": time,
                "received": { "type": "integer", "description": "positive on_hand adjustments with reason restock or return" },
                "sold": { "type": "integer", "description": "units of orders placed in the bucket, not cancelled or expired (the series sums to units_sold)" },
                "released": { "type": "integer", "description": "units released by cancellations and expiries in the bucket" },
                "shipped": { "type": "integer", "description": "units shipped in the bucket" },
                "adjusted": { "type": "integer", "description": "every other change of on_hand by adjustments and sets (signed)" },
                "reserved_delta": { "type": "integer", "description": "net change of reserved in the bucket" } } } } } },
        "TopReport": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "type": "object", "properties": {
                "sku": { "type": "string" }, "name": { "type": "string" }, "units": int,
                "revenue": { "$ref": "#/components/schemas/Money" },
                "abc": { "type": "string", "enum": ["A", "B", "C"], "description": "by revenue among all SKUs sold in the window: A while the revenue of the SKUs before it is under 80% of the total, B under 95%, C the rest" } } } } } },
        "ReservationReport": { "type": "object", "description": "orders holding reserved stock now (awaiting payment, or paid and not shipped)", "properties": {
            "open_orders": int, "units": int, "oldest_at": { "type": "string", "format": "date-time", "nullable": true },
            "age_p50_seconds": { "type": "integer", "nullable": true, "description": "nearest-rank percentile of the orders' ages, whole seconds" },
            "age_p90_seconds": { "type": "integer", "nullable": true },
            "expiring_within_5m": { "type": "integer", "description": "unpaid orders whose payment deadline is within 5 minutes (or past)" } } },
    })
}

/// An example answer of each report, in the deployment's `currency` (`openapi.rs` attaches
/// them to the operations; its tests check them against the schemas above).
pub fn examples(currency: &str) -> Value {
    json!({
        "StockReport": { "items": [{
            "sku": "TEE-RED-M", "name": "Organic cotton tee, red, M", "on_hand": 38, "reserved": 3, "available": 35,
            "status": "in_stock", "units_sold": 42, "units_received": 60, "velocity_per_day": 1.4,
            "days_of_cover": 25.0, "sell_through": 0.5454545454545454, "stockout_seconds": 5400,
            "last_movement_at": "2026-12-02T10:31:59.440087Z" }], "next": "~TEE-RED-M" },
        "MovementReport": { "items": [{
            "bucket_start": "2026-12-02T00:00:00.000000Z", "received": 52, "sold": 3, "released": 3,
            "shipped": 0, "adjusted": -2, "reserved_delta": 0 }] },
        "TopReport": { "items": [
            { "sku": "TEE-RED-M", "name": "Organic cotton tee, red, M", "units": 42,
              "revenue": { "amount": 105000, "currency": currency }, "abc": "A" },
            { "sku": "MUG-BLUE", "name": "Enamel mug, blue", "units": 9,
              "revenue": { "amount": 10800, "currency": currency }, "abc": "B" }] },
        "ReservationReport": { "open_orders": 2, "units": 5, "oldest_at": "2026-12-02T10:31:59.442644Z",
            "age_p50_seconds": 95, "age_p90_seconds": 410, "expiring_within_5m": 1 },
    })
}

/// The CSV of each report's example above, as `Accept: text/csv` answers it (CRLF rows).
fn csv_example(path: &str, currency: &str) -> String {
    let rows = match path {
        "/v1/admin/reports/stock" => "TEE-RED-M,\"Organic cotton tee, red, M\",38,3,35,in_stock,42,60,1.4,25.0,0.5454545454545454,5400,2026-12-02T10:31:59.440087Z\r\n".to_owned(),
        "/v1/admin/reports/movements" => "2026-12-02T00:00:00.000000Z,52,3,3,0,-2,0\r\n".to_owned(),
        "/v1/admin/reports/top" => format!(
            "TEE-RED-M,\"Organic cotton tee, red, M\",42,105000,{currency},A\r\nMUG-BLUE,\"Enamel mug, blue\",9,10800,{currency},B\r\n"
        ),
        _ => "2,5,2026-12-02T10:31:59.442644Z,95,410,1\r\n".to_owned(),
    };
    format!("{}\r\n{rows}", columns(path).join(","))
}

/// The columns of a report's CSV, the JSON member names of its items.
fn columns(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/admin/reports/stock" => STOCK_COLUMNS,
        "/v1/admin/reports/movements" => MOVEMENT_COLUMNS,
        "/v1/admin/reports/top" => TOP_COLUMNS,
        _ => RESERVATION_COLUMNS,
    }
}

/// Adds the report's query parameters and its `text/csv` answer to `op`, for report paths.
pub fn extend(path: &str, currency: &str, op: &mut Value) {
    if !path.starts_with("/v1/admin/reports/") {
        return;
    }
    let window = json!({ "name": "window", "in": "query", "schema": { "type": "string", "default": "30d" }, "description": WINDOW });
    let limit = json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 } });
    let params = match path {
        "/v1/admin/reports/stock" => vec![
            window,
            json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": ["in_stock", "low", "out"] } }),
            json!({ "name": "sort", "in": "query", "schema": { "type": "string", "enum": ["sku", "days_of_cover", "units_sold", "velocity_per_day"], "default": "sku" }, "description": "sku ascending; days_of_cover ascending (null last); units_sold and velocity_per_day descending; ties by sku" }),
            limit,
            json!({ "name": "after", "in": "query", "schema": { "type": "string" } }),
        ],
        "/v1/admin/reports/movements" => vec![
            json!({ "name": "sku", "in": "query", "schema": { "type": "string" }, "description": "one SKU (unknown: 400 invalid_query); all SKUs when absent" }),
            json!({ "name": "bucket", "in": "query", "schema": { "type": "string", "enum": ["hour", "day"], "default": "day" }, "description": "UTC hours or days" }),
            json!({ "name": "from", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "default: 30 days before to; buckets from the one containing from" }),
            json!({ "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "default: now; buckets starting before to; at most 366 days after from" }),
        ],
        "/v1/admin/reports/top" => vec![
            json!({ "name": "by", "in": "query", "schema": { "type": "string", "enum": ["units", "revenue"], "default": "units" } }),
            window,
            limit,
        ],
        _ => vec![],
    };
    if let Some(list) = op["parameters"].as_array_mut() {
        list.extend(params);
        list.push(json!({ "name": "Accept", "in": "header", "schema": { "type": "string" }, "description": "text/csv for CSV" }));
    }
    op["responses"]["200"]["content"]["text/csv"] = json!({ "schema": { "type": "string",
        "description": format!("RFC 4180, a header row then one row per item: {} (null is empty; Money is its amount, with its currency in `currency`)", columns(path).join(",")) },
        "example": csv_example(path, currency) });
}
