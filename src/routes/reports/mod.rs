//! Reports (`reports/` computes them): each answers JSON, or CSV when asked with
//! `Accept: text/csv`.

pub mod movements;
pub mod reservations;
pub mod stock;
pub mod top;

use actix_web::{http::header, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::{error::ApiError, reports::Window};

/// CSV when the client lists `text/csv` among what it accepts (spreadsheets, `curl -H`).
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv")))
}

/// The report: `body` as JSON, or `items` as CSV with `columns`.
fn answer(req: &HttpRequest, body: &Value, columns: &[&str], items: &[Value]) -> HttpResponse {
    let mut response = if wants_csv(req) {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
            .body(crate::reports::csv::render(columns, items))
    } else {
        crate::routes::ok(body)
    };
    // Reports are as of the request: a cache must not answer the next one with this.
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("Accept"));
    response
}

fn window(raw: Option<&str>) -> Result<Window, ApiError> {
    Window::parse(raw, chrono::Utc::now()).map_err(ApiError::invalid_query)
}
