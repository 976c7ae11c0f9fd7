//! The one middleware every request passes: request id, tracing span, metrics, and the
//! problem+json rewrite of errors that actix answers by itself (404, 405, ...).

use std::time::Instant;

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderName, HeaderValue},
        StatusCode,
    },
    middleware::Next,
    web, HttpResponse,
};
use serde_json::Map;
use tracing::Instrument;

use crate::{error::PROBLEM_JSON, metrics::Metrics, problem::Problem};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Largest request head (URI and headers) served; larger is 431, like a proxy would answer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    // The client's id when it is a sane header value; otherwise a fresh one.
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid is a header value"));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let uri = req.uri();
    let head_bytes = uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
        + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    if head_bytes > MAX_HEAD_BYTES {
        let response = problem_response(Problem::RequestHeaderFieldsTooLarge, "the request head is larger than 16 KiB");
        let mut res = req.into_response(response);
        res.headers_mut().insert(REQUEST_ID, request_id);
        res.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        return Ok(res);
    }
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or(""),
        method = %method,
        path = %req.path(),
    );

    // Handlers' and extractors' errors arrive here as responses already; an `Err` can only
    // come from inner middleware, and actix renders it.
    let mut res = next.call(req).instrument(span.clone()).await?.map_into_boxed_body();

    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_problem(&res) {
        res = into_problem(res);
    }
    res.headers_mut().insert(REQUEST_ID, request_id);

    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(&route, method.as_str(), status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), route = %route, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request completed")
    });
    Ok(res)
}

fn is_problem(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()))
}

/// Rewrites a bare error response of actix (empty or plain text) into a problem document.
fn into_problem(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let (problem, detail) = match status.as_u16() {
        400 => (Problem::BadRequest, "the request could not be understood"),
        404 => (Problem::NotFound, "no such resource"),
        405 => (Problem::MethodNotAllowed, "this method is not allowed on this resource"),
        408 => (Problem::RequestTimeout, "the request took too long to arrive"),
        413 => (Problem::PayloadTooLarge, "the request body is too large"),
        414 => (Problem::UriTooLong, "the request URI is too long"),
        415 => (Problem::UnsupportedMediaType, "send the body as Content-Type: application/json"),
        431 => (Problem::RequestHeaderFieldsTooLarge, "the request head is too large"),
        500 => (Problem::InternalError, "an unexpected error occurred; it has been logged"),
        503 => (Problem::ServiceUnavailable, "the service is unavailable; try again"),
        s if s < 500 => (Problem::ClientError, "the request was refused"),
        _ => (Problem::ServerError, "the server failed"),
    };
    // The catch-alls name whatever status actix answered; the others answer their own.
    let body = problem.document_at(status.as_u16(), detail, &Map::new()).to_string();
    res.map_body(|head, _| {
        head.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        head.headers_mut().remove(header::CONTENT_LENGTH);
        BoxBody::new(body)
    })
}

/// Used where a handler must answer a problem by itself (e.g. the default service).
pub fn problem_response(problem: Problem, detail: &str) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .body(problem.document(detail, &Map::new()).to_string())
}
