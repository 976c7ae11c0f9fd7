//! The OpenAPI 3 document of every endpoint, with an example of every request, answer and
//! problem, and a self-contained HTML rendering of it for `/docs?plain` (no scripts, no fonts,
//! nothing fetched; `/docs` itself is the interactive viewer, `docs/`).
//!
//! Written as a table next to the route table (`routes/mod.rs`); a test checks that every
//! documented path answers something other than 404, so the two cannot drift apart. The
//! problem codes come from `Problem::ALL`; a test checks each is documented on an operation.
//! Tests here check that every operation has its examples and that each fits its schema.

use serde_json::{json, Map, Value};

use crate::{
    domain::{ADJUSTMENT_REASONS, MAX_DELTA, MAX_LINE_QUANTITY, MAX_ON_HAND, MAX_PRICE},
    events::types::TYPES,
    problem::Problem,
};

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    None,
    Session,
    Admin,
}

struct Endpoint {
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
    body: Option<&'static str>,
    ok: (u16, &'static str),
    errors: &'static [(u16, &'static str)],
}

const fn ep(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
    body: Option<&'static str>,
    ok: (u16, &'static str),
    errors: &'static [(u16, &'static str)],
) -> Endpoint {
    Endpoint { method, path, auth, summary, body, ok, errors }
}

/// Problems any operation may answer, whatever it does: actix's own refusals (rewritten by the
/// middleware) and failures of the server itself. Documented as each operation's `default`.
const ANY_OPERATION: &[Problem] = &[
    Problem::BadRequest,
    Problem::NotFound,
    Problem::MethodNotAllowed,
    Problem::RequestTimeout,
    Problem::UriTooLong,
    Problem::RequestHeaderFieldsTooLarge,
    Problem::ClientError,
    Problem::InternalError,
    Problem::ServerError,
    Problem::ServiceUnavailable,
];

/// Problems of reading a JSON body (`extract.rs`), for every operation that takes one.
const JSON_BODY: &[Problem] = &[
    Problem::MalformedJson,
    Problem::MalformedBody,
    Problem::PayloadTooLarge,
    Problem::UnsupportedMediaType,
    Problem::InvalidBody,
    Problem::InvalidNumber,
];

const ENDPOINTS: &[Endpoint] = &[
    ep("get", "/healthz", Auth::None, "200 while the process runs", None, (200, "Status"), &[]),
    ep("get", "/readyz", Auth::None, "200 when the database answers and its schema is current", None, (200, "Status"), &[(503, "database_unavailable or schema_not_current")]),
    ep("get", "/metrics", Auth::None, "Prometheus metrics: requests and latency by route and status, pool usage, cart cache hits and misses. When STOCKCART_METRICS_TOKEN is set, send it as a bearer token.", None, (200, "Text"), &[(401, "unauthorized (a metrics token is configured and was not sent)")]),
    ep("get", "/openapi.json", Auth::None, "This document", None, (200, "Object"), &[]),
    ep("get", "/docs", Auth::None, "This document in an interactive viewer (Swagger UI, served by this server: it works offline): schemas, examples, and requests tried from the page with a token given under Authorize. Without JavaScript, or with ?plain: one static HTML table.", None, (200, "Html"), &[]),
    ep("get", "/dashboard", Auth::None, "The live inventory dashboard (a page for people; it signs in with the admin token, kept in sessionStorage and sent as a bearer token); its script and style sheet are /dashboard/app.js and /dashboard/app.css", None, (200, "Html"), &[]),
    ep("put", "/v1/admin/products/{sku}", Auth::Admin, "Create (201, stock 0) or update (200) a product. Name, price and threshold changes never change the stock level's version or ledger.", Some("ProductInput"), (200, "Product"), &[(201, "created"), (422, "invalid_sku, invalid_name, invalid_price, invalid_currency, currency_mismatch, invalid_threshold, invalid_number")]),
    ep("get", "/v1/products/{sku}", Auth::None, "A product with its available stock and status. With a session token (optional) it also records a view for that shopper (see /v1/session/recently-viewed); recording never fails the read", None, (200, "Product"), &[(404, "unknown_sku")]),
    ep("get", "/v1/products", Auth::None, "Products ordered by SKU (?limit=1..200, ?after=<cursor>)", None, (200, "ProductPage"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/inventory/{sku}", Auth::Admin, "A stock level, with ETag", None, (200, "Level"), &[(404, "unknown_sku")]),
    ep("put", "/v1/admin/inventory/{sku}", Auth::Admin, "Set on_hand absolutely; If-Match is required", Some("SetLevel"), (200, "Level"), &[(404, "unknown_sku"), (409, "insufficient_stock (below reserved)"), (412, "version_mismatch"), (422, "invalid_on_hand"), (428, "precondition_required")]),
    ep("post", "/v1/admin/inventory/{sku}/adjustments", Auth::Admin, "Adjust on_hand by a delta with a reason; honours If-Match", Some("Adjustment"), (200, "Level"), &[(404, "unknown_sku"), (409, "insufficient_stock"), (412, "version_mismatch"), (422, "invalid_delta, invalid_reason, invalid_reference, quantity_out_of_range")]),
    ep("post", "/v1/admin/inventory/batch", Auth::Admin, "Up to 10,000 adjustments, all or nothing; errors name every failing line by index", Some("Batch"), (200, "BatchResult"), &[(409, "insufficient_stock (errors[])"), (422, "invalid_batch, or per-line codes in errors[]")]),
    ep("get", "/v1/admin/inventory/{sku}/movements", Auth::Admin, "The movement ledger of a SKU, oldest first", None, (200, "MovementPage"), &[(400, "invalid_query"), (404, "unknown_sku")]),
    ep("get", "/v1/admin/invariants", Auth::Admin, "Runs the invariant checker: reserved = open orders, ledger sums = levels, versions = ledger counts", None, (200, "InvariantReport"), &[]),
    ep("post", "/v1/sessions", Auth::None, "Start a shopper session; the token is shown once. Limited per client address (STOCKCART_SESSION_RATE_LIMIT).", None, (201, "NewSession"), &[(429, "rate_limited (Retry-After)")]),
    ep("get", "/v1/session", Auth::Session, "The current session", None, (200, "Session"), &[]),
    ep("delete", "/v1/session", Auth::Session, "Revoke the session on every replica", None, (204, "Empty"), &[]),
    ep("post", "/v1/admin/sessions/attach", Auth::Admin, "Bind a session to a customer and merge its guest cart into the customer's cart (quantities summed, capped at 999; at most 100 lines)", Some("Attach"), (200, "Cart"), &[(404, "unknown_session"), (409, "session_already_attached"), (422, "invalid_token, invalid_customer_id")]),
    ep("get", "/v1/cart", Auth::Session, "The session's cart, with ETag", None, (200, "Cart"), &[]),
    ep("delete", "/v1/cart", Auth::Session, "Empty the cart; honours If-Match", None, (200, "Cart"), &[(412, "version_mismatch")]),
    ep("post", "/v1/cart/items", Auth::Session, "Add a quantity of a SKU to its line; honours If-Match", Some("AddItem"), (200, "Cart"), &[(404, "unknown_sku"), (409, "insufficient_stock"), (412, "version_mismatch"), (422, "invalid_sku, invalid_quantity, cart_full")]),
    ep("put", "/v1/cart/items/{sku}", Auth::Session, "Set a line's quantity; 0 removes it; honours If-Match", Some("SetItem"), (200, "Cart"), &[(404, "unknown_sku"), (409, "insufficient_stock"), (412, "version_mismatch"), (422, "invalid_quantity, cart_full")]),
    ep("delete", "/v1/cart/items/{sku}", Auth::Session, "Remove a line; honours If-Match", None, (200, "Cart"), &[(404, "unknown_sku"), (412, "version_mismatch")]),
    ep("post", "/v1/checkout", Auth::Session, "Reserve every line and place an order, all or nothing. Requires Idempotency-Key (1..255 chars); a repeat replays the first answer with Idempotent-Replayed: true", None, (201, "Order"), &[(400, "idempotency_key_required, invalid_idempotency_key"), (409, "insufficient_stock (shortages[]), idempotency_in_progress"), (422, "empty_cart"), (503, "shutting_down (retry on another replica)")]),
    ep("get", "/v1/orders", Auth::Session, "The session's (or its customer's) orders, newest first", None, (200, "OrderPage"), &[(400, "invalid_query")]),
    ep("get", "/v1/orders/{id}", Auth::Session, "One of the caller's orders", None, (200, "Order"), &[(404, "unknown_order")]),
    ep("post", "/v1/orders/{id}/cancel", Auth::Session, "Cancel and release the reservation; repeating is 200", None, (200, "Order"), &[(404, "unknown_order"), (409, "invalid_transition")]),
    ep("post", "/v1/admin/orders/{id}/payment", Auth::Admin, "Record the payment of an order awaiting it", Some("Payment"), (200, "Order"), &[(404, "unknown_order"), (409, "invalid_transition"), (422, "invalid_reference")]),
    ep("post", "/v1/admin/orders/{id}/ship", Auth::Admin, "Ship a paid order: on_hand and reserved fall by its quantities", None, (200, "Order"), &[(404, "unknown_order"), (409, "invalid_transition")]),
    ep("get", "/v1/admin/orders", Auth::Admin, "All orders, newest first (?status=, ?limit=, ?after=)", None, (200, "OrderPage"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/events", Auth::Admin, "The event log, oldest first: events with id > after (default 0), filtered by ?types= (comma-separated; a family as stock.* or order.*) and ?sku=; next is the id to pass as after. Includes every write acknowledged before the request, on any replica.", None, (200, "EventPage"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/events/stream", Auth::Admin, "Server-sent events: the same events as they commit, on any replica (id: <event id>, event: <type>, data: <the event JSON>). Starts with retry: 2000; a comment at least every 15 s. Resumes after Last-Event-ID (or ?after=) with nothing missing or repeated; event: reset when that is older than the retention. A client that falls far behind is closed and resumes.", None, (200, "EventStream"), &[(400, "invalid_query"), (503, "stream_limit_reached (Retry-After)")]),
    ep("get", "/v1/stock/stream", Auth::None, "Server-sent events for storefronts: ?skus=A,B (1 to 100 known SKUs). First one `stock` event per SKU with its current state, then one per change: {sku, available, status, version}. A slow client may skip intermediate values, never ends on an old one.", None, (200, "EventStream"), &[(400, "invalid_query"), (503, "stream_limit_reached (Retry-After)")]),
    ep("get", "/v1/session/recently-viewed", Auth::Session, "Up to 20 distinct products this shopper viewed (a product read with the session token records a view), most recent first, with current price and availability; shared by every session of a customer and merged at attach (?limit=1..20)", None, (200, "ProductList"), &[(400, "invalid_query")]),
    ep("get", "/v1/popular-products", Auth::None, "The most viewed products in the window (?window=1h|24h|7d, default 24h; ?limit=1..100, default 10), counted on every replica and at most a few seconds behind; 24h and 7d start on the hour", None, (200, "PopularList"), &[(400, "invalid_query")]),
    ep("post", "/v1/admin/webhooks", Auth::Admin, "Register an endpoint that receives events committed from now on, signed as Standard Webhooks describes (webhook-id = event id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>). The secret is shown only here and on rotation. Only http/https; hosts resolving to loopback, private or link-local addresses are refused unless STOCKCART_WEBHOOK_ALLOW_PRIVATE=true.", Some("WebhookInput"), (201, "WebhookWithSecret"), &[(422, "invalid_url, invalid_types, invalid_description")]),
    ep("get", "/v1/admin/webhooks", Auth::Admin, "Every webhook endpoint (?limit=, ?after=)", None, (200, "WebhookPage"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/webhooks/{id}", Auth::Admin, "One webhook endpoint", None, (200, "Webhook"), &[(404, "unknown_webhook")]),
    ep("patch", "/v1/admin/webhooks/{id}", Auth::Admin, "Change url, types, description or status; re-enabling clears disabled_reason and sends what was held", Some("WebhookPatch"), (200, "Webhook"), &[(404, "unknown_webhook"), (422, "invalid_url, invalid_types, invalid_description, invalid_status")]),
    ep("delete", "/v1/admin/webhooks/{id}", Auth::Admin, "Delete an endpoint; no delivery to it starts afterwards", None, (204, "Empty"), &[(404, "unknown_webhook")]),
    ep("post", "/v1/admin/webhooks/{id}/rotate-secret", Auth::Admin, "A new secret; for 24 h deliveries carry signatures with both secrets", None, (200, "WebhookWithSecret"), &[(404, "unknown_webhook")]),
    ep("get", "/v1/admin/webhooks/{id}/deliveries", Auth::Admin, "The endpoint's delivery log, newest first (?status=pending|succeeded|failed, ?after=, ?limit=)", None, (200, "DeliveryPage"), &[(400, "invalid_query"), (404, "unknown_webhook")]),
    ep("post", "/v1/admin/webhooks/{id}/replay", Auth::Admin, "Deliver every retained matching event in (after, until] again, with its original webhook-id", Some("Replay"), (202, "Queued"), &[(404, "unknown_webhook"), (422, "invalid_range")]),
    ep("get", "/v1/admin/reports/stock", Auth::Admin, "Stock health per SKU over ?window=: levels, units sold and received, velocity, days of cover, sell-through, stockout time; ?status=, ?sort=, ?limit=, ?after=. Includes every movement committed before the request. Accept: text/csv for CSV.", None, (200, "StockReport"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/reports/movements", Auth::Admin, "A time series of movements (?bucket=hour|day, ?from=, ?to=) over all SKUs or ?sku=. Accept: text/csv for CSV.", None, (200, "MovementReport"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/reports/top", Auth::Admin, "Best sellers over ?window= by ?by=units|revenue, with ABC classes by revenue. Accept: text/csv for CSV.", None, (200, "TopReport"), &[(400, "invalid_query")]),
    ep("get", "/v1/admin/reports/reservations", Auth::Admin, "Reservations held now: open orders, units, oldest, age percentiles, expiring within 5 minutes. Accept: text/csv for CSV.", None, (200, "ReservationReport"), &[]),
];

/// The schema of each event type's `data`.
fn event_schema(event_type: &str) -> &'static str {
    match event_type {
        "stock.changed" => "StockChanged",
        t if t.starts_with("stock.") => "StockStatusChanged",
        _ => "OrderEvent",
    }
}

// Descriptions are Markdown (the viewer renders them): write `<placeholders>` in backticks, or
// they are read as HTML tags and vanish.

/// A SKU as `domain::Sku` parses it.
const SKU_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// Names, customer ids: not blank, no control characters (as `domain` parses them).
const NAME_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// References: no control characters.
const REFERENCE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn schemas(currency: &str) -> Value {
    let int = json!({ "type": "integer", "format": "int64" });
    let sku = json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_PATTERN });
    let reference = json!({ "type": "string", "minLength": 1, "maxLength": 200, "pattern": REFERENCE_PATTERN });
    let money = json!({ "$ref": "#/components/schemas/Money" });
    let line = json!({ "type": "object", "properties": {
        "sku": { "type": "string" }, "name": { "type": "string" }, "quantity": int,
        "unit_price": money, "line_total": money } });
    let page = |item: &str| {
        json!({ "type": "object", "properties": {
        "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
        "next": { "type": "string", "nullable": true, "description": "cursor of the next page, for ?after=" } } })
    };
    let stock_status = json!({ "type": "string", "enum": ["in_stock", "low", "out"],
        "description": "out at 0 available; low when 0 < available <= low_stock_threshold; in_stock otherwise" });
    let mut event_schemas: Vec<&str> = TYPES.iter().map(|t| event_schema(t)).collect();
    event_schemas.dedup();
    let event_data: Vec<Value> =
        event_schemas.iter().map(|schema| json!({ "$ref": format!("#/components/schemas/{schema}") })).collect();
    let mut all = json!({
        "Money": { "type": "object", "required": ["amount", "currency"], "properties": {
            "amount": { "type": "integer", "format": "int64", "description": "minor units" },
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$" } } },
        "Problem": { "type": "object", "description": "RFC 9457 problem document (application/problem+json)", "properties": {
            "type": { "type": "string" }, "title": { "type": "string" }, "status": int,
            "detail": { "type": "string" },
            "code": { "type": "string", "enum": Problem::ALL.iter().map(|p| p.code()).collect::<Vec<_>>() },
            "shortages": { "type": "array", "description": "insufficient_stock: the lines that ask for more than is available",
                "items": { "type": "object", "properties": { "sku": { "type": "string" }, "requested": int, "available": int } } },
            "errors": { "type": "array", "description": "invalid_batch and the batch's insufficient_stock: each failing line by index",
                "items": { "type": "object", "properties": { "index": int, "sku": { "type": "string", "nullable": true },
                    "code": { "type": "string" }, "detail": { "type": "string" } } } },
            "current": { "type": "object", "description": "version_mismatch: the current representation (also flattened into the document)" } },
            // Other extension members: see each problem's example (RFC 9457 allows them).
            "additionalProperties": true,
            "x-problems": Problem::ALL.iter()
                .map(|p| json!({ "code": p.code(), "status": p.status(), "title": p.title() }))
                .collect::<Vec<_>>() },
        "Status": { "type": "object", "properties": { "status": { "type": "string" } } },
        "Text": { "type": "string" },
        "Html": { "type": "string" },
        "Object": { "type": "object" },
        "Empty": { "type": "object" },
        "ProductInput": { "type": "object", "required": ["name", "price"], "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN },
            "price": { "$ref": "#/components/schemas/Price" },
            "low_stock_threshold": { "type": "integer", "minimum": 0, "maximum": MAX_ON_HAND, "nullable": true } } },
        "Price": { "type": "object", "required": ["amount", "currency"], "properties": {
            "amount": { "type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_PRICE, "description": "minor units" },
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$", "enum": [currency], "description": "the deployment's one currency (STOCKCART_CURRENCY)" } } },
        "Product": { "type": "object", "properties": {
            "sku": { "type": "string" }, "name": { "type": "string" }, "price": money,
            "available": int, "low_stock_threshold": int, "status": stock_status } },
        "ProductPage": page("Product"),
        "Level": { "type": "object", "properties": {
            "sku": { "type": "string" }, "on_hand": int, "reserved": int, "available": int,
            "version": int, "low_stock_threshold": int, "status": stock_status } },
        "SetLevel": { "type": "object", "required": ["on_hand"], "properties": {
            "on_hand": { "type": "integer", "minimum": 0, "maximum": MAX_ON_HAND },
            "reference": reference } },
        "Adjustment": { "type": "object", "required": ["delta", "reason"], "properties": {
            "delta": { "type": "integer", "anyOf": [ { "minimum": -MAX_DELTA, "maximum": -1 }, { "minimum": 1, "maximum": MAX_DELTA } ], "description": "non-zero, at most 1e9 in magnitude" },
            "reason": { "type": "string", "enum": ADJUSTMENT_REASONS },
            "reference": reference } },
        "Batch": { "type": "object", "required": ["adjustments"], "properties": {
            "adjustments": { "type": "array", "minItems": 1, "maxItems": 10000, "items": { "allOf": [
                { "$ref": "#/components/schemas/Adjustment" },
                { "type": "object", "required": ["sku"], "properties": { "sku": sku } } ] } } } },
        "BatchResult": { "type": "object", "properties": { "applied": int } },
        "Movement": { "type": "object", "properties": {
            "id": int, "sku": { "type": "string" },
            "kind": { "type": "string", "enum": ["adjustment", "set", "reservation", "release", "shipment"] },
            "delta_on_hand": int, "delta_reserved": int, "on_hand_after": int, "reserved_after": int,
            "version_after": int, "reason": { "type": "string", "nullable": true },
            "reference": { "type": "string", "nullable": true },
            "order_id": { "type": "string", "format": "uuid", "nullable": true },
            "at": { "type": "string", "format": "date-time" } } },
        "MovementPage": page("Movement"),
        "InvariantReport": { "type": "object", "properties": {
            "ok": { "type": "boolean" }, "skus_checked": int, "violations": { "type": "array", "items": { "type": "string" } } } },
        "NewSession": { "type": "object", "properties": {
            "token": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" } } },
        "Session": { "type": "object", "properties": {
            "expires_at": { "type": "string", "format": "date-time" },
            "customer_id": { "type": "string", "nullable": true } } },
        "Attach": { "type": "object", "required": ["token", "customer_id"], "properties": {
            "token": { "type": "string" }, "customer_id": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN } } },
        "Cart": { "type": "object", "properties": {
            "id": { "type": "string", "format": "uuid" }, "version": int,
            "lines": { "type": "array", "items": line }, "item_count": int, "subtotal": money,
            "updated_at": { "type": "string", "format": "date-time" } } },
        "AddItem": { "type": "object", "required": ["sku", "quantity"], "properties": {
            "sku": sku, "quantity": { "type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY } } },
        "SetItem": { "type": "object", "required": ["quantity"], "properties": {
            "quantity": { "type": "integer", "minimum": 0, "maximum": MAX_LINE_QUANTITY } } },
        "Order": { "type": "object", "properties": {
            "id": { "type": "string", "format": "uuid" },
            "status": { "type": "string", "enum": ["awaiting_payment", "paid", "shipped", "cancelled", "expired"] },
            "lines": { "type": "array", "items": line }, "total": money,
            "created_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": "string", "format": "date-time" } } },
        "OrderPage": page("Order"),
        "Payment": { "type": "object", "required": ["reference"], "properties": {
            "reference": reference } },
    });
    // A second literal: one json! of every schema would pass the macro's recursion limit.
    let events = json!({
        "Event": { "type": "object", "properties": {
            "id": { "type": "integer", "format": "int64", "description": "position in the one total order shared by every replica" },
            "type": { "type": "string", "enum": TYPES },
            "at": { "type": "string", "format": "date-time" },
            // anyOf: the shapes share members and no member is required, so a stock.changed
            // document also matches the others and `oneOf` would refuse it.
            "data": { "anyOf": event_data } } },
        "EventPage": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
            "next": { "type": "integer", "nullable": true, "description": "the id of the last event, to pass as after; null on an empty page" } } },
        "EventStream": { "type": "string", "description": "text/event-stream" },
        "StockChanged": { "type": "object", "properties": {
            "sku": { "type": "string" },
            "kind": { "type": "string", "enum": ["adjustment", "set", "reservation", "release", "shipment"] },
            "on_hand": int, "reserved": int, "available": int, "version": int, "previous_version": int,
            "delta_on_hand": int, "delta_reserved": int, "status": stock_status, "movement_id": int,
            "order_id": { "type": "string", "format": "uuid", "nullable": true } } },
        "StockStatusChanged": { "type": "object", "description": "stock.low: entered low; stock.out: entered out; stock.back: left out; stock.recovered: low to in_stock", "properties": {
            "sku": { "type": "string" }, "available": int, "low_stock_threshold": int,
            "status": stock_status, "previous_status": stock_status, "version": int } },
        "OrderEvent": { "type": "object", "properties": { "order": { "$ref": "#/components/schemas/Order" } } },
        "WebhookInput": { "type": "object", "required": ["url"], "properties": {
            "url": { "type": "string", "format": "uri", "maxLength": 2048 },
            "types": { "type": "array", "items": { "type": "string" }, "description": "event types or families (stock.*); empty or absent: all" },
            "description": { "type": "string", "maxLength": 500 } } },
        "WebhookPatch": { "type": "object", "properties": {
            "url": { "type": "string", "format": "uri", "maxLength": 2048 },
            "types": { "type": "array", "items": { "type": "string" } },
            "description": { "type": "string", "maxLength": 500 },
            "status": { "type": "string", "enum": ["enabled", "disabled"] } } },
        "Webhook": { "type": "object", "properties": {
            "id": { "type": "string", "format": "uuid" }, "url": { "type": "string" },
            "types": { "type": "array", "items": { "type": "string" } }, "description": { "type": "string" },
            "status": { "type": "string", "enum": ["enabled", "disabled"] },
            "disabled_reason": { "type": "string", "nullable": true },
            "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" } } },
        "WebhookWithSecret": { "allOf": [ { "$ref": "#/components/schemas/Webhook" },
            { "type": "object", "properties": { "secret": { "type": "string", "description": "`whsec_<base64 of 32 random bytes>`" } } } ] },
        "WebhookPage": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Webhook" } },
            "next": { "type": "string", "nullable": true } } },
        "Delivery": { "type": "object", "properties": {
            "id": int, "event_id": int, "event_type": { "type": "string" },
            "status": { "type": "string", "enum": ["pending", "succeeded", "failed"] },
            "attempts": int, "last_status_code": { "type": "integer", "nullable": true },
            "last_error": { "type": "string", "nullable": true },
            "next_attempt_at": { "type": "string", "format": "date-time", "nullable": true },
            "updated_at": { "type": "string", "format": "date-time" } } },
        "DeliveryPage": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } },
            "next": { "type": "string", "nullable": true } } },
        "Replay": { "type": "object", "required": ["after"], "properties": {
            "after": { "type": "integer", "minimum": 0 }, "until": { "type": "integer", "minimum": 0 } } },
        "Queued": { "type": "object", "properties": { "queued": int } },
        "ProductList": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Product" } } } },
        "PopularList": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "allOf": [ { "$ref": "#/components/schemas/Product" },
                { "type": "object", "properties": { "views": { "type": "integer", "format": "int64" } } } ] } } } },
        "StockState": { "type": "object", "description": "data of the public stream's `stock` events", "properties": {
            "sku": { "type": "string" }, "available": int, "status": stock_status, "version": int } },
    });
    if let (Some(all), Value::Object(events)) = (all.as_object_mut(), events) {
        all.extend(events);
    }
    if let (Some(all), Value::Object(reports)) = (all.as_object_mut(), crate::reports::openapi::schemas()) {
        all.extend(reports);
    }
    all
}

/// Ids and names the examples share, so that one example reads as the sequel of another.
const EX_SKU: &str = "TEE-RED-M";
const EX_ORDER: &str = "01a2364f-a6d0-77d0-844d-b169374507ca";
const EX_CART: &str = "4e4a5619-a582-40a5-8f92-504d7ba2dba4";
const EX_WEBHOOK: &str = "01a2364f-e80c-7565-9bee-99e0017ffb6f";
const EX_SESSION: &str = "sc_63eb13d79ceb7d74832ad52fb099b798cc84ac00436fce15b79ed60b57b75e66";

/// An example of each request and answer schema, keyed like `schemas()` (answers taken from
/// a running server, then shortened). `operation` attaches them; a test checks that every
/// operation has them and that each fits its schema.
fn examples(currency: &str) -> Map<String, Value> {
    let price = |amount: i64| json!({ "amount": amount, "currency": currency });
    let product = json!({ "sku": EX_SKU, "name": "Organic cotton tee, red, M", "price": price(2500),
        "available": 35, "low_stock_threshold": 5, "status": "in_stock" });
    let level = json!({ "sku": EX_SKU, "on_hand": 38, "reserved": 3, "available": 35, "version": 4,
        "low_stock_threshold": 5, "status": "in_stock" });
    let line = json!({ "sku": EX_SKU, "name": "Organic cotton tee, red, M", "quantity": 3,
        "unit_price": price(2500), "line_total": price(7500) });
    let order = json!({ "id": EX_ORDER, "status": "awaiting_payment", "lines": [line], "total": price(7500),
        "created_at": "2026-12-02T10:31:59.442644Z", "expires_at": "2026-12-02T10:46:59.442644Z" });
    let webhook = json!({ "id": EX_WEBHOOK, "url": "https://hooks.example.com/stockcart",
        "types": ["stock.*", "order.paid"], "description": "warehouse", "status": "enabled", "disabled_reason": null,
        "created_at": "2026-12-02T10:32:16.142284Z", "updated_at": "2026-12-02T10:32:16.142284Z" });
    let mut with_secret = webhook.clone();
    with_secret["secret"] = json!("whsec_L1LqxqteQvu/9PHKJt9H6I0fV61KfZRISLZREiHUoYc=");
    let stock_changed = json!({ "id": 6, "type": "stock.changed", "at": "2026-12-02T10:31:59.440087Z", "data": {
        "sku": EX_SKU, "kind": "reservation", "on_hand": 38, "reserved": 3, "available": 35, "version": 3,
        "previous_version": 2, "delta_on_hand": 0, "delta_reserved": 3, "status": "in_stock", "movement_id": 4,
        "order_id": EX_ORDER } });
    let order_placed =
        json!({ "id": 7, "type": "order.placed", "at": "2026-12-02T10:31:59.440087Z", "data": { "order": order } });
    let mut popular = product.clone();
    popular["views"] = json!(128);
    let mut all = json!({
        "Status": { "status": "ok" },
        "Text": "# HELP stockcart_http_requests_total HTTP requests by route, method and status.\n\
                 # TYPE stockcart_http_requests_total counter\n\
                 stockcart_http_requests_total{route=\"/v1/cart\",method=\"GET\",status=\"200\"} 1042\n",
        "Html": "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stockcart API</title>…</html>",
        "Object": { "openapi": "3.0.3", "info": { "title": "stockcart", "version": env!("CARGO_PKG_VERSION") }, "paths": {} },
        "EventStream": format!("retry: 2000\n\nid: 6\nevent: stock.changed\ndata: {stock_changed}\n\n"),
        "ProductInput": { "name": "Organic cotton tee, red, M", "price": price(2500), "low_stock_threshold": 5 },
        "Product": product,
        "ProductPage": { "items": [product], "next": EX_SKU },
        "Level": level,
        "SetLevel": { "on_hand": 38, "reference": "stocktake 2026-12" },
        "Adjustment": { "delta": 40, "reason": "restock", "reference": "PO-2026-118" },
        "Batch": { "adjustments": [
            { "sku": EX_SKU, "delta": 40, "reason": "restock", "reference": "PO-2026-118" },
            { "sku": "MUG-BLUE", "delta": -2, "reason": "shrinkage" }] },
        "BatchResult": { "applied": 2 },
        "MovementPage": { "items": [{ "id": 1, "sku": EX_SKU, "kind": "adjustment", "delta_on_hand": 40,
            "delta_reserved": 0, "on_hand_after": 40, "reserved_after": 0, "version_after": 1, "reason": "restock",
            "reference": "PO-2026-118", "order_id": null, "at": "2026-12-02T10:31:58.940534Z" }], "next": "1" },
        "InvariantReport": { "ok": true, "skus_checked": 200, "violations": [] },
        "NewSession": { "token": EX_SESSION, "expires_at": "2027-01-01T10:31:59.202780Z" },
        "Session": { "expires_at": "2027-01-01T10:31:59.202780Z", "customer_id": null },
        "Attach": { "token": EX_SESSION, "customer_id": "cus_1042" },
        "Cart": { "id": EX_CART, "version": 2, "lines": [line], "item_count": 3, "subtotal": price(7500),
            "updated_at": "2026-12-02T10:31:59.336877Z" },
        "AddItem": { "sku": EX_SKU, "quantity": 2 },
        "SetItem": { "quantity": 3 },
        "Order": order,
        "OrderPage": { "items": [order], "next": null },
        "Payment": { "reference": "pay_3Kx9" },
    });
    // A second literal: one json! of every example would pass the macro's recursion limit.
    let more = json!({
        "EventPage": { "items": [stock_changed, order_placed], "next": 7 },
        "ProductList": { "items": [product] },
        "PopularList": { "items": [popular] },
        "WebhookInput": { "url": "https://hooks.example.com/stockcart", "types": ["stock.*", "order.paid"],
            "description": "warehouse" },
        "WebhookPatch": { "status": "disabled" },
        "Webhook": webhook,
        "WebhookWithSecret": with_secret,
        "WebhookPage": { "items": [webhook], "next": null },
        "DeliveryPage": { "items": [{ "id": 5, "event_id": 6, "event_type": "stock.changed", "status": "failed",
            "attempts": 8, "last_status_code": 503, "last_error": "503 Service Unavailable",
            "next_attempt_at": null, "updated_at": "2026-12-02T12:02:16.248279Z" }], "next": null },
        "Replay": { "after": 0, "until": 7 },
        "Queued": { "queued": 5 },
    });
    let (Value::Object(mut map), Value::Object(more), Value::Object(reports)) =
        (all.take(), more, crate::reports::openapi::examples(currency))
    else {
        unreachable!("json! objects")
    };
    map.extend(more);
    map.extend(reports);
    map
}

/// An example document of each problem. A match with no catch-all arm: a new problem does
/// not compile until it has its example.
fn problem_example(p: Problem, currency: &str) -> Value {
    let none = Map::new();
    let detail = match p {
        Problem::MalformedJson => "the body is not valid JSON: expected `,` or `}` at line 1 column 18",
        Problem::MalformedBody => "the request body could not be read",
        Problem::InvalidHeader => "If-Match is not valid",
        Problem::InvalidQuery => "limit must be an integer from 1 to 200",
        Problem::IdempotencyKeyRequired => "send an Idempotency-Key header (1 to 255 characters)",
        Problem::InvalidIdempotencyKey => "Idempotency-Key must be visible ASCII",
        Problem::Unauthorized => "unknown, expired or revoked session token",
        Problem::Forbidden => "a session token cannot use admin endpoints",
        Problem::UnknownSku => "no product with sku \"TEE-RED-M\"",
        Problem::UnknownOrder => "no such order",
        Problem::UnknownSession => "no live session has this token",
        Problem::InsufficientStock => {
            let list = [crate::problem::Shortage { sku: EX_SKU, requested: 40, available: 35 }];
            return p
                .document("not enough stock for every line; nothing was reserved", &crate::problem::shortages(&list));
        }
        Problem::InvalidTransition => {
            let status = Map::from_iter([("status".to_owned(), json!("cancelled"))]);
            // `status` stays the HTTP status: an extension never overrides a standard member.
            return p.document("an order that is cancelled cannot become shipped", &status);
        }
        Problem::SessionAlreadyAttached => "this session belongs to another customer",
        Problem::IdempotencyInProgress => "a checkout with this Idempotency-Key is still running; retry",
        Problem::VersionMismatch => {
            // The current representation, as `current` and flattened (as `ApiError::version_mismatch`).
            let current = examples(currency).remove("Level").unwrap_or_default();
            let mut extensions = current.as_object().cloned().unwrap_or_default();
            extensions.insert("current".to_owned(), current);
            return p.document("If-Match does not name the current version, which is 4", &extensions);
        }
        Problem::PreconditionRequired => "send If-Match: \"<version>\" from the level's ETag",
        Problem::InvalidBody => "the body must be a JSON object",
        Problem::InvalidNumber => "quantity must be written as an integer, without a fraction or exponent",
        Problem::InvalidSku => "sku must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        Problem::InvalidName => "name must be 1 to 200 characters, not blank, without control characters",
        Problem::InvalidPrice => "price.amount must be 0 to 100000000000",
        Problem::InvalidCurrency => "currency must be three capital letters, like EUR",
        Problem::CurrencyMismatch => "this deployment sells in EUR; the price is in \"USD\"",
        Problem::InvalidThreshold => "low_stock_threshold must be 0 or more",
        Problem::InvalidQuantity => "quantity must be 1 to 999",
        Problem::CartFull => "a cart holds at most 100 lines",
        Problem::EmptyCart => "the cart is empty",
        Problem::InvalidOnHand => "on_hand must be 0 to 1000000000",
        Problem::InvalidDelta => "delta must be non-zero and at most 1000000000 in magnitude",
        Problem::InvalidReason => "reason must be one of restock, correction, shrinkage, return",
        Problem::InvalidReference => "reference must be 1 to 200 characters without control characters",
        Problem::QuantityOutOfRange => "on_hand would exceed 1000000000",
        Problem::InvalidBatch => {
            let errors = json!([{ "index": 1, "sku": "MUG-BLUE", "code": "invalid_delta",
                "detail": "delta must be non-zero and at most 1000000000 in magnitude" }]);
            let extensions = Map::from_iter([("errors".to_owned(), errors)]);
            return p.document("1 adjustment(s) are invalid; nothing was applied", &extensions);
        }
        Problem::InvalidToken => "token is required",
        Problem::InvalidCustomerId => "customer_id must be 1 to 200 characters",
        Problem::BadRequest => "the request could not be understood",
        Problem::NotFound => "no such resource",
        Problem::MethodNotAllowed => "this method is not allowed on this resource",
        Problem::RequestTimeout => "the request body took too long to arrive",
        Problem::PayloadTooLarge => "request body is larger than 64 KiB",
        Problem::UriTooLong => "the request URI is too long",
        Problem::UnsupportedMediaType => "send the body as Content-Type: application/json",
        Problem::RequestHeaderFieldsTooLarge => "the request head is larger than 16 KiB",
        Problem::ClientError => "the request was refused",
        Problem::InternalError => "an unexpected error occurred; it has been logged",
        Problem::ServerError => "the server failed",
        Problem::DatabaseUnavailable => "the database does not answer in time",
        Problem::SchemaNotCurrent => "the database schema is not current: applied   V1__init; pending   V13__next",
        Problem::ServiceUnavailable => "the service is unavailable; try again",
        Problem::ShuttingDown => "this replica is stopping; retry",
        Problem::StreamLimitReached => "this replica serves as many event streams as it may; try again",
        Problem::RateLimited => "too many sessions created from this address; try again later",
        Problem::UnknownWebhook => "no webhook endpoint has this id",
        Problem::InvalidUrl => "url must be http or https",
        Problem::InvalidTypes => "types must be a list of event types",
        Problem::InvalidDescription => "description must be at most 500 characters, without control characters",
        Problem::InvalidStatus => "status must be enabled or disabled",
        Problem::InvalidRange => "after must be an event id (0 or more), until one at or after it",
    };
    p.document(detail, &none)
}

/// The problem codes a response's description names (`code: a, b (...)`), in order.
fn named_problems(description: &str) -> Vec<Problem> {
    let mut named = Vec::new();
    for word in description.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
        if let Some(p) = Problem::ALL.iter().find(|p| p.code() == word) {
            if !named.contains(p) {
                named.push(*p);
            }
        }
    }
    named
}

fn operation(e: &Endpoint, examples: &Map<String, Value>, currency: &str) -> Value {
    let mut responses = Map::new();
    let example = |name: &str| examples.get(name).cloned().unwrap_or(Value::Null);
    let schema_ref = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let media = match e.ok.1 {
        "Text" => "text/plain",
        "Html" => "text/html",
        "EventStream" => "text/event-stream",
        _ => "application/json",
    };
    let success = if e.ok.0 == 204 {
        json!({ "description": "success, no body" })
    } else {
        json!({ "description": "success", "content": { media: { "schema": schema_ref(e.ok.1), "example": example(e.ok.1) } } })
    };
    responses.insert(e.ok.0.to_string(), success);
    let problem = json!({ "application/problem+json": { "schema": schema_ref("Problem") } });
    for (status, codes) in e.errors {
        let entry = if *status < 300 {
            json!({ "description": codes, "content": { "application/json": { "schema": schema_ref(e.ok.1), "example": example(e.ok.1) } } })
        } else {
            json!({ "description": format!("code: {codes}"), "content": problem })
        };
        responses.insert(status.to_string(), entry);
    }
    let if_match = e.body.is_some() || matches!(e.ok.1, "Cart" | "Level") && e.method != "get";
    if e.body.is_some() {
        add_problems(&mut responses, JSON_BODY, &problem);
    }
    if if_match {
        add_problems(&mut responses, &[Problem::InvalidHeader], &problem);
    }
    if e.path.starts_with("/v1/") {
        add_problems(&mut responses, &[Problem::DatabaseUnavailable], &problem);
    }
    if e.auth != Auth::None {
        add_problems(&mut responses, &[Problem::Unauthorized], &problem);
    }
    if e.auth == Auth::Admin {
        add_problems(&mut responses, &[Problem::Forbidden], &problem);
    }
    let any: Vec<&str> = ANY_OPERATION.iter().map(|p| p.code()).collect();
    responses.insert(
        "default".into(),
        json!({ "description": format!("code: {} (any operation)", any.join(", ")), "content": problem }),
    );
    // An example of every problem a response names, from `components/examples`.
    for (status, response) in responses.iter_mut() {
        if status.starts_with('2') {
            continue;
        }
        let named: Map<String, Value> = named_problems(response["description"].as_str().unwrap_or(""))
            .into_iter()
            .map(|p| (p.code().to_owned(), json!({ "$ref": format!("#/components/examples/{}", p.code()) })))
            .collect();
        response["content"]["application/problem+json"]["examples"] = Value::Object(named);
    }
    let mut parameters: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "sku" => json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_PATTERN }),
                "id" => json!({ "type": "string", "format": "uuid" }),
                _ => json!({ "type": "string" }),
            };
            let example = match (name, e.path.starts_with("/v1/admin/webhooks")) {
                ("sku", _) => EX_SKU,
                ("id", true) => EX_WEBHOOK,
                _ => EX_ORDER,
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema, "example": example })
        })
        .collect();
    if matches!(e.ok.1, "ProductPage" | "MovementPage" | "OrderPage" | "WebhookPage" | "DeliveryPage") {
        parameters.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 } }));
        // Each list's cursor as its route parses it (an empty or foreign one is 400).
        let cursor = match e.ok.1 {
            "ProductPage" => {
                json!({ "type": "string", "pattern": SKU_PATTERN, "description": "the last SKU of the previous page" })
            }
            "MovementPage" => {
                json!({ "type": "integer", "format": "int64", "minimum": 0, "description": "the last movement id of the previous page" })
            }
            _ => {
                json!({ "type": "string", "pattern": "^[0-9]{1,17}_[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", "description": "next from the previous page" })
            }
        };
        parameters.push(json!({ "name": "after", "in": "query", "schema": cursor }));
    }
    if e.ok.1 == "EventPage" {
        parameters.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 } }));
    }
    if matches!(e.ok.1, "EventPage" | "EventStream") {
        parameters.push(json!({ "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0 }, "description": "an event id" }));
    }
    if e.ok.1 == "EventStream" {
        parameters.push(json!({ "name": "Last-Event-ID", "in": "header", "schema": { "type": "integer", "minimum": 0 }, "description": "resume after this event id (browsers send it on reconnect)" }));
    }
    if e.path.starts_with("/v1/admin/events") {
        parameters.push(json!({ "name": "types", "in": "query", "schema": { "type": "string" }, "description": format!("comma-separated: {}, or a family stock.* / order.*", TYPES.join(", ")) }));
        parameters
            .push(json!({ "name": "sku", "in": "query", "schema": { "type": "string", "pattern": SKU_PATTERN } }));
    }
    if e.path == "/v1/stock/stream" {
        parameters.push(json!({ "name": "skus", "in": "query", "required": true, "schema": { "type": "string" }, "description": "1 to 100 comma-separated SKUs" }));
    }
    if e.path == "/v1/admin/orders" {
        parameters.push(json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": ["awaiting_payment", "paid", "shipped", "cancelled", "expired"] } }));
    }
    if e.path == "/v1/checkout" {
        parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 255 }, "example": "order-7f3a" }));
    }
    if e.path == "/docs" {
        parameters.push(json!({ "name": "plain", "in": "query", "allowEmptyValue": true, "schema": { "type": "string" },
            "description": "present (any value): the same documentation as one static HTML table, for readers without JavaScript" }));
    }
    if if_match {
        parameters.push(json!({ "name": "If-Match", "in": "header", "required": e.path == "/v1/admin/inventory/{sku}", "schema": { "type": "string" }, "description": "`\"<version>\"`, from an ETag" }));
    }
    let mut op =
        json!({ "summary": e.summary, "tags": [tag(e.path)], "parameters": parameters, "responses": responses });
    crate::reports::openapi::extend(e.path, currency, &mut op);
    if let Some(body) = e.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": {
            "schema": schema_ref(body), "example": example(body) } } });
    }
    match e.auth {
        Auth::None => op["security"] = json!([]),
        Auth::Session => op["security"] = json!([{ "session": [] }]),
        Auth::Admin => op["security"] = json!([{ "admin": [] }]),
    }
    op
}

/// The group an operation is listed under in the viewer, by resource.
fn tag(path: &str) -> &'static str {
    let rest = path.strip_prefix("/v1/").map(|p| p.strip_prefix("admin/").unwrap_or(p));
    match rest {
        None => "operations",
        Some(p) if p.starts_with("products") => "catalog",
        Some(p) if p.starts_with("inventory") || p == "invariants" => "inventory",
        Some(p) if p.starts_with("session/recently-viewed") || p.starts_with("popular") => "shopper memory",
        Some(p) if p.starts_with("session") => "sessions",
        Some(p) if p.starts_with("cart") => "cart",
        Some(p) if p.starts_with("checkout") || p.starts_with("orders") => "checkout and orders",
        Some(p) if p.starts_with("events") || p.starts_with("stock/") => "events",
        Some(p) if p.starts_with("webhooks") => "webhooks",
        Some(p) if p.starts_with("reports") => "reports",
        Some(_) => "other",
    }
}

/// Adds problems to the responses of their statuses, after the codes already listed there.
fn add_problems(responses: &mut Map<String, Value>, problems: &[Problem], content: &Value) {
    for p in problems {
        let entry = responses
            .entry(p.status().to_string())
            .or_insert_with(|| json!({ "description": "code:", "content": content }));
        let description = entry["description"].as_str().unwrap_or("code:");
        let joined = if description.ends_with(':') {
            format!("{description} {}", p.code())
        } else {
            format!("{description}, {}", p.code())
        };
        entry["description"] = Value::from(joined);
    }
}

/// The document of a deployment in the default currency.
pub fn document() -> Value {
    document_for(crate::config::default_of("STOCKCART_CURRENCY"))
}

/// The document of a deployment selling in `currency` (prices in another are refused).
pub fn document_for(currency: &str) -> Value {
    let examples = examples(currency);
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method] = operation(e, &examples, currency);
    }
    let problem_examples: Map<String, Value> = Problem::ALL
        .iter()
        .map(|p| (p.code().to_owned(), json!({ "summary": p.title(), "value": problem_example(*p, currency) })))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "stockcart",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Shopping carts and real-time inventory. Errors are RFC 9457 problem documents with a stable `code`. \
                            Integers must be written as integers (1.0 and 1e2 are 422 invalid_number). Request bodies are limited \
                            to 64 KiB (8 MiB for the batch endpoint). Every response carries X-Request-Id. \
                            A request the HTTP parser itself refuses (broken framing such as Content-Length with \
                            Transfer-Encoding or a negative Content-Length, more than 96 headers) gets an empty 400 or \
                            431 and the connection is closed: it never reaches the service that writes problem documents. \
                            Every request is answered within STOCKCART_REQUEST_TIMEOUT (503 database_unavailable with \
                            Retry-After when the database is too slow)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(currency),
            "examples": problem_examples,
            "securitySchemes": {
                "session": { "type": "http", "scheme": "bearer", "description": "a token from POST /v1/sessions (try it: call POST /v1/sessions, then paste its token here)" },
                "admin": { "type": "http", "scheme": "bearer", "description": "STOCKCART_ADMIN_TOKEN (kept by the viewer only in the page's memory)" }
            }
        }
    })
}

/// Every documented (method, path), for the test that keeps this table and the routes in step.
pub fn endpoints() -> Vec<(&'static str, &'static str)> {
    ENDPOINTS.iter().map(|e| (e.method, e.path)).collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn html() -> String {
    html_for(crate::config::default_of("STOCKCART_CURRENCY"))
}

pub fn html_for(currency: &str) -> String {
    let mut rows = String::new();
    for e in ENDPOINTS {
        let auth = match e.auth {
            Auth::None => "none",
            Auth::Session => "session",
            Auth::Admin => "admin",
        };
        let errors: Vec<String> = e.errors.iter().map(|(s, c)| format!("{s} {}", escape(c))).collect();
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{auth}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>\n",
            e.method.to_uppercase(),
            escape(e.path),
            escape(e.summary),
            e.body.unwrap_or("-"),
            e.ok.0,
            e.ok.1,
            errors.join("<br>")
        ));
    }
    let schemas = serde_json::to_string_pretty(&schemas(currency)).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stockcart API</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}}pre{{background:#f6f6f6;padding:1rem}}</style>\
         </head><body><h1>stockcart API</h1>\
         <p>JSON in and out; errors are <code>application/problem+json</code> with a stable <code>code</code>. \
         Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>: a session token from <code>POST /v1/sessions</code>, \
         or the admin token for <code>/v1/admin/...</code>. Versions travel as <code>ETag: \"&lt;version&gt;\"</code> and \
         <code>If-Match</code>. Lists take <code>?limit=</code> (1..200) and <code>?after=&lt;cursor&gt;</code>. \
         The machine-readable document is <a href=\"/openapi.json\">/openapi.json</a>; with JavaScript, \
         <a href=\"/docs\">/docs</a> shows it with examples and sends requests from the page.</p>\
         <table><tr><th>method</th><th>path</th><th>auth</th><th>what</th><th>body</th><th>success</th><th>errors</th></tr>\n{rows}</table>\
         <h2>Schemas</h2><pre>{}</pre></body></html>",
        escape(&schemas)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The codes named in the operations' error responses.
    fn documented_codes(doc: &Value) -> HashSet<String> {
        let mut codes = HashSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    let description = response["description"].as_str().unwrap_or("");
                    if status.starts_with('2') {
                        continue;
                    }
                    let words = description.split(|c: char| !(c.is_ascii_lowercase() || c == '_'));
                    codes.extend(words.filter(|w| !w.is_empty()).map(str::to_owned));
                }
            }
        }
        codes
    }

    #[test]
    fn every_problem_code_is_listed_and_documented_on_an_operation() {
        let doc = document();
        let listed: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let documented = documented_codes(&doc);
        for p in Problem::ALL {
            assert!(listed.contains(&p.code()), "{} is not in the Problem schema", p.code());
            assert!(documented.contains(p.code()), "{} is not documented on any operation", p.code());
        }
    }

    /// `schema` with its `$ref` followed.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => resolve(doc, doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("no {r}"))),
            None => schema,
        }
    }

    /// Where `value` breaks `schema`: types, enums, bounds, required members, and members the
    /// schema does not declare (unless it allows others). Enough of OpenAPI 3.0's schema
    /// language for this document: `$ref`, `allOf`, `anyOf`, `nullable`.
    fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = resolve(doc, schema);
        if value.is_null() {
            if schema["nullable"] != json!(true) {
                errors.push(format!("{at}: null where the schema does not allow it"));
            }
            return;
        }
        if let Some(parts) = schema["anyOf"].as_array() {
            let fits = parts.iter().any(|part| {
                let mut sub = Vec::new();
                check(doc, part, value, at, &mut sub);
                sub.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: matches none of anyOf"));
            }
        }
        // allOf: one object schema with the parts' members.
        let mut properties = schema["properties"].as_object().cloned().unwrap_or_default();
        let mut required: Vec<Value> = schema["required"].as_array().cloned().unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let part = resolve(doc, part);
            properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let fits_type = match schema["type"].as_str() {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !fits_type {
            errors.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let (Some(n), Some(min)) = (value.as_f64(), schema["minimum"].as_f64()) {
            if n < min {
                errors.push(format!("{at}: {n} is below {min}"));
            }
        }
        if let (Some(n), Some(max)) = (value.as_f64(), schema["maximum"].as_f64()) {
            if n > max {
                errors.push(format!("{at}: {n} is above {max}"));
            }
        }
        if let (Some(text), Some(max)) = (value.as_str(), schema["maxLength"].as_u64()) {
            if text.chars().count() as u64 > max {
                errors.push(format!("{at}: longer than {max}"));
            }
        }
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        if let Some(members) = value.as_object() {
            for name in required.iter().filter_map(Value::as_str) {
                if !members.contains_key(name) {
                    errors.push(format!("{at}: the required member {name} is missing"));
                }
            }
            let open = schema["additionalProperties"] == json!(true) || properties.is_empty();
            for (name, member) in members {
                match properties.get(name) {
                    Some(member_schema) => check(doc, member_schema, member, &format!("{at}.{name}"), errors),
                    None if open => {}
                    None => errors.push(format!("{at}: {name} is not a member of the schema")),
                }
            }
        }
    }

    /// Every (where, media type object) of the document's operations: request bodies and answers.
    fn media_types(doc: &Value) -> Vec<(String, &Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (media, content) in op["requestBody"]["content"].as_object().into_iter().flatten() {
                    found.push((format!("{method} {path} request {media}"), content));
                }
                for (status, response) in op["responses"].as_object().unwrap() {
                    for (media, content) in response["content"].as_object().into_iter().flatten() {
                        found.push((format!("{method} {path} {status} {media}"), content));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_request_and_answer_has_an_example_that_fits_its_schema() {
        for currency in ["EUR", "USD"] {
            let doc = document_for(currency);
            let mut errors = Vec::new();
            for (at, content) in media_types(&doc) {
                let example = &content["example"];
                if !example.is_null() {
                    check(&doc, &content["schema"], example, &at, &mut errors);
                } else if content["examples"].as_object().is_none_or(|e| e.is_empty()) {
                    errors.push(format!("{at}: no example"));
                }
            }
            for (path, item) in doc["paths"].as_object().unwrap() {
                for (method, op) in item.as_object().unwrap() {
                    for p in op["parameters"].as_array().unwrap().iter().filter(|p| p["in"] == "path") {
                        check(
                            &doc,
                            &p["schema"],
                            &p["example"],
                            &format!("{method} {path} {}", p["name"]),
                            &mut errors,
                        );
                    }
                }
            }
            assert!(errors.is_empty(), "{currency}:\n{}", errors.join("\n"));
        }
    }

    #[test]
    fn every_problem_has_an_example_and_every_problem_answer_shows_the_codes_it_names() {
        let doc = document();
        let examples = &doc["components"]["examples"];
        let mut errors = Vec::new();
        for p in Problem::ALL {
            let example = &examples[p.code()]["value"];
            if example.is_null() {
                errors.push(format!("{}: no example", p.code()));
                continue;
            }
            check(&doc, &json!({ "$ref": "#/components/schemas/Problem" }), example, p.code(), &mut errors);
            assert_eq!(example["code"], p.code());
            assert_eq!(example["status"], p.status(), "{}", p.code());
            assert_eq!(example["type"], format!("/problems/{}", p.code()));
            assert!(!example["detail"].as_str().unwrap().is_empty());
        }
        for (at, content) in media_types(&doc).into_iter().filter(|(at, _)| at.ends_with("application/problem+json")) {
            let shown: Vec<&String> = content["examples"].as_object().map(|e| e.keys().collect()).unwrap_or_default();
            let description_at = at.trim_end_matches(" application/problem+json");
            for code in documented_codes_at(&doc, description_at) {
                if !shown.contains(&&code) {
                    errors.push(format!("{at}: names {code} and shows no example of it"));
                }
            }
            for example in content["examples"].as_object().into_iter().flatten().map(|(_, e)| resolve(&doc, e)) {
                assert!(!example["value"].is_null(), "{at}: an example reference that leads nowhere");
            }
        }
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    /// The problem codes named by one response's description (`<method> <path> <status>`).
    fn documented_codes_at(doc: &Value, at: &str) -> Vec<String> {
        let mut words = at.splitn(3, ' ');
        let (method, path, status) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        let description = doc["paths"][path][method]["responses"][status]["description"].as_str().unwrap();
        description
            .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .filter(|w| w.contains('_') || Problem::ALL.iter().any(|p| p.code() == *w))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_example_checker_refuses_what_does_not_fit() {
        // The checker above must be able to fail, or the tests that use it prove nothing.
        let doc = document();
        let level = json!({ "$ref": "#/components/schemas/Level" });
        for (bad, why) in [
            (json!({ "sku": "A", "on_hand": "3" }), "a string for an integer"),
            (json!({ "sku": "A", "onhand": 3 }), "an undeclared member"),
            (json!({ "sku": "A", "status": "sold_out" }), "a value outside the enum"),
            (json!({ "sku": null }), "null where not nullable"),
        ] {
            let mut errors = Vec::new();
            check(&doc, &level, &bad, "Level", &mut errors);
            assert!(!errors.is_empty(), "accepted {why}");
        }
        let mut errors = Vec::new();
        check(&doc, &json!({ "$ref": "#/components/schemas/AddItem" }), &json!({ "sku": "A" }), "AddItem", &mut errors);
        assert!(!errors.is_empty(), "accepted a missing required member");
    }

    #[test]
    fn every_documented_code_is_a_problem() {
        let known: HashSet<&str> = Problem::ALL.iter().map(|p| p.code()).collect();
        for code in documented_codes(&document()) {
            // Codes are the snake_case words; the prose around them has none.
            if code.contains('_') {
                assert!(known.contains(code.as_str()), "{code} is documented but is no Problem");
            }
        }
    }
}
