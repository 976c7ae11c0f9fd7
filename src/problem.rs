//! The one list of problems the API reports: each variant is a stable machine `code`, the
//! HTTP status it is answered with and a short title (RFC 9457's `type`, `status`, `title`).
//!
//! Why an enum rather than string literals at call sites: a code is part of the contract, so
//! a typo must not compile, each code's status is decided once, and the OpenAPI document
//! lists exactly these codes (a test in `openapi.rs` checks that every one is documented).
//! This module knows nothing of actix: `error.rs` turns a problem into a response, and the
//! checkout, which stores its answers for replays, renders documents here without HTTP.

use serde_json::{json, Map, Value};

macro_rules! problems {
    ($($variant:ident = ($code:literal, $status:literal, $title:literal),)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Problem {
            $($variant,)*
        }

        impl Problem {
            /// Every problem, in the order they are listed here.
            pub const ALL: &'static [Problem] = &[$(Problem::$variant,)*];

            /// The stable snake_case `code` member.
            pub const fn code(self) -> &'static str {
                match self {
                    $(Problem::$variant => $code,)*
                }
            }

            /// The HTTP status a problem of this kind is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Problem::$variant => $status,)*
                }
            }

            /// A short summary of the kind of problem, the same for every occurrence.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Problem::$variant => $title,)*
                }
            }
        }
    };
}

problems! {
    // A body or header that cannot be read.
    MalformedJson = ("malformed_json", 400, "Malformed JSON"),
    MalformedBody = ("malformed_body", 400, "Unreadable request body"),
    InvalidHeader = ("invalid_header", 400, "Invalid header"),
    InvalidQuery = ("invalid_query", 400, "Invalid query parameter"),
    IdempotencyKeyRequired = ("idempotency_key_required", 400, "Idempotency-Key required"),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 400, "Invalid Idempotency-Key"),
    // Authentication.
    Unauthorized = ("unauthorized", 401, "Unauthorized"),
    Forbidden = ("forbidden", 403, "Forbidden"),
    // Things that do not exist.
    UnknownSku = ("unknown_sku", 404, "Unknown SKU"),
    UnknownOrder = ("unknown_order", 404, "Unknown order"),
    UnknownSession = ("unknown_session", 404, "Unknown session"),
    // Conflicts with the current state.
    InsufficientStock = ("insufficient_stock", 409, "Insufficient stock"),
    InvalidTransition = ("invalid_transition", 409, "Invalid order transition"),
    SessionAlreadyAttached = ("session_already_attached", 409, "Session already attached"),
    IdempotencyInProgress = ("idempotency_in_progress", 409, "Idempotent request in progress"),
    VersionMismatch = ("version_mismatch", 412, "Version mismatch"),
    PreconditionRequired = ("precondition_required", 428, "Precondition required"),
    // A well-formed body that breaks a rule.
    InvalidBody = ("invalid_body", 422, "Invalid body"),
    InvalidNumber = ("invalid_number", 422, "Invalid number"),
    InvalidSku = ("invalid_sku", 422, "Invalid SKU"),
    InvalidName = ("invalid_name", 422, "Invalid name"),
    InvalidPrice = ("invalid_price", 422, "Invalid price"),
    InvalidCurrency = ("invalid_currency", 422, "Invalid currency"),
    CurrencyMismatch = ("currency_mismatch", 422, "Currency mismatch"),
    InvalidThreshold = ("invalid_threshold", 422, "Invalid low-stock threshold"),
    InvalidQuantity = ("invalid_quantity", 422, "Invalid quantity"),
    CartFull = ("cart_full", 422, "Cart full"),
    EmptyCart = ("empty_cart", 422, "Empty cart"),
    InvalidOnHand = ("invalid_on_hand", 422, "Invalid on_hand"),
    InvalidDelta = ("invalid_delta", 422, "Invalid delta"),
    InvalidReason = ("invalid_reason", 422, "Invalid reason"),
    InvalidReference = ("invalid_reference", 422, "Invalid reference"),
    QuantityOutOfRange = ("quantity_out_of_range", 422, "Quantity out of range"),
    InvalidBatch = ("invalid_batch", 422, "Invalid batch"),
    InvalidToken = ("invalid_token", 422, "Invalid token"),
    InvalidCustomerId = ("invalid_customer_id", 422, "Invalid customer id"),
    // Answered for any request, mostly by the middleware on actix's behalf.
    BadRequest = ("bad_request", 400, "Bad request"),
    NotFound = ("not_found", 404, "Not found"),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    RequestTimeout = ("request_timeout", 408, "Request timeout"),
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large"),
    UriTooLong = ("uri_too_long", 414, "URI too long"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type"),
    RequestHeaderFieldsTooLarge = ("request_header_fields_too_large", 431, "Request header fields too large"),
    ClientError = ("client_error", 400, "Request refused"),
    InternalError = ("internal_error", 500, "Internal error"),
    ServerError = ("server_error", 500, "Server error"),
    DatabaseUnavailable = ("database_unavailable", 503, "Database unavailable"),
    SchemaNotCurrent = ("schema_not_current", 503, "Schema not current"),
    ServiceUnavailable = ("service_unavailable", 503, "Service unavailable"),
    ShuttingDown = ("shutting_down", 503, "Shutting down"),
    StreamLimitReached = ("stream_limit_reached", 503, "Stream limit reached"),
    RateLimited = ("rate_limited", 429, "Too many requests"),
    // Webhooks.
    UnknownWebhook = ("unknown_webhook", 404, "Unknown webhook endpoint"),
    InvalidUrl = ("invalid_url", 422, "Invalid webhook URL"),
    InvalidTypes = ("invalid_types", 422, "Invalid event types"),
    InvalidDescription = ("invalid_description", 422, "Invalid description"),
    InvalidStatus = ("invalid_status", 422, "Invalid status"),
    InvalidRange = ("invalid_range", 422, "Invalid event range"),
}

impl Problem {
    /// The problem document, answered with this problem's own status.
    pub fn document(self, detail: &str, extensions: &Map<String, Value>) -> Value {
        self.document_at(self.status(), detail, extensions)
    }

    /// The problem document with another status: only for the middleware's catch-all codes
    /// (`client_error`, `server_error`), which name whatever status actix answered.
    pub fn document_at(self, status: u16, detail: &str, extensions: &Map<String, Value>) -> Value {
        let code = self.code();
        let mut body = json!({
            "type": format!("/problems/{code}"),
            "title": self.title(),
            "status": status,
            "detail": detail,
            "code": code,
        });
        let fields = body.as_object_mut().expect("an object");
        for (k, v) in extensions {
            fields.entry(k.clone()).or_insert_with(|| v.clone());
        }
        body
    }
}

/// One line that asks for more than is available.
pub struct Shortage<'a> {
    pub sku: &'a str,
    pub requested: i64,
    pub available: i64,
}

/// The extension members of `insufficient_stock` wherever one line or order is refused (a
/// cart line, a checkout, a change of one level): `shortages: [{sku, requested, available}]`.
/// The batch endpoint names its lines by index instead (`errors`), as the contract says.
pub fn shortages(list: &[Shortage<'_>]) -> Map<String, Value> {
    let list: Vec<Value> =
        list.iter().map(|s| json!({ "sku": s.sku, "requested": s.requested, "available": s.available })).collect();
    Map::from_iter([("shortages".to_owned(), Value::from(list))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for p in Problem::ALL {
            assert!(seen.insert(p.code()), "{} twice", p.code());
            assert!(p.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", p.code());
            assert!((400..600).contains(&p.status()), "{}", p.code());
            assert!(!p.title().is_empty());
        }
    }
}
