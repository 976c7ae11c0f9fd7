//! Operations endpoints: health, readiness, metrics, the OpenAPI document and its docs page.

use actix_web::HttpResponse;
use serde_json::json;

use crate::{
    auth::Admin, error::ApiResult, invariants, metrics::Gauges, middleware::problem_response, migrate, openapi,
    problem::Problem, state::State,
};

pub async fn healthz() -> HttpResponse {
    super::ok(&json!({ "status": "ok" }))
}

/// Ready when the database answers and carries exactly this binary's migrations.
pub async fn readyz(state: State) -> HttpResponse {
    match migrate::status(&state.pool).await {
        Ok(status) if status.is_current() => super::ok(&json!({ "status": "ready" })),
        Ok(status) => problem_response(
            Problem::SchemaNotCurrent,
            &format!("the database schema is not current: {}", status.report().trim().replace('\n', "; ")),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem_response(Problem::DatabaseUnavailable, "the database does not answer")
        }
    }
}

pub async fn metrics(state: State) -> HttpResponse {
    let gauges = Gauges {
        pool_size: state.pool.size(),
        pool_idle: state.pool.num_idle(),
        pool_max: state.settings.pool_size,
        cart_cache_entries: state.carts.entry_count(),
        stream_clients: state.events.clients(),
        view_record_failures: state.views.record_failures.load(std::sync::atomic::Ordering::Relaxed),
        view_flushes: state.views.flushes.load(std::sync::atomic::Ordering::Relaxed),
        view_flush_failures: state.views.flush_failures.load(std::sync::atomic::Ordering::Relaxed),
    };
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&gauges))
}

pub async fn openapi() -> HttpResponse {
    super::ok(&openapi::document())
}

pub async fn docs() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(openapi::html())
}

pub async fn not_found() -> HttpResponse {
    problem_response(Problem::NotFound, "no such resource")
}

pub async fn invariants(_: Admin, state: State) -> ApiResult<HttpResponse> {
    let report = invariants::check(&state.pool).await?;
    Ok(super::ok(&json!({ "ok": report.ok(), "skus_checked": report.skus_checked, "violations": report.violations })))
}

pub async fn method_not_allowed() -> HttpResponse {
    problem_response(Problem::MethodNotAllowed, "this method is not allowed on this resource")
}
