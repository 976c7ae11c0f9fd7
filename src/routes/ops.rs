//! Operations endpoints: health, readiness, metrics and the OpenAPI document (its viewer at
//! /docs is `docs/`).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use sqlx::PgPool;

use crate::{
    auth::{Admin, MetricsReader},
    error::{ApiError, ApiResult},
    invariants,
    metrics::Gauges,
    middleware::problem_response,
    migrate, openapi,
    problem::Problem,
    state::State,
    store,
};

/// The readiness check's own pool (see `startup::readiness_pool`).
pub struct Readiness {
    pool: PgPool,
}

impl Readiness {
    pub fn new(pool: PgPool) -> Readiness {
        Readiness { pool }
    }
}

/// `/readyz` answers within this whatever the database does: balancers probe with short
/// timeouts of their own, and a probe that hangs reads as ready to some of them.
const READINESS_LIMIT: Duration = Duration::from_millis(1000);

pub async fn healthz() -> HttpResponse {
    super::ok(&json!({ "status": "ok" }))
}

/// Ready when the database answers, takes writes (a primary, not a standby or a demoted
/// primary), and carries exactly this binary's migrations.
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let check = async {
        if !store::server::accepts_writes(&readiness.pool).await? {
            return Ok(None);
        }
        migrate::status(&readiness.pool).await.map(Some)
    };
    let status = match tokio::time::timeout(READINESS_LIMIT, check).await {
        Ok(status) => status,
        Err(_) => {
            tracing::warn!("readiness check timed out");
            return ApiError::unavailable("the database does not answer in time").error_response();
        }
    };
    match status {
        Ok(None) => ApiError::unavailable("the database takes no writes (a standby, or a primary being demoted)")
            .error_response(),
        Ok(Some(status)) if status.is_current() => super::ok(&json!({ "status": "ready" })),
        Ok(Some(status)) => problem_response(
            Problem::SchemaNotCurrent,
            &format!("the database schema is not current: {}", status.report().trim().replace('\n', "; ")),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::unavailable("the database does not answer").error_response()
        }
    }
}

pub async fn metrics(_: MetricsReader, state: State) -> HttpResponse {
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

pub async fn openapi(state: State) -> HttpResponse {
    super::ok(&openapi::document_for(state.settings.currency.as_str()))
}

pub async fn not_found() -> HttpResponse {
    problem_response(Problem::NotFound, "no such resource")
}

pub async fn invariants(_: Admin, state: State) -> ApiResult<HttpResponse> {
    let report = invariants::check(&state.pool).await?;
    Ok(super::ok(&json!({ "ok": report.ok(), "skus_checked": report.skus_checked, "violations": report.violations })))
}

/// 405 with `Allow` naming the resource's methods, as RFC 9110 asks; they are read from the
/// OpenAPI table, which a test keeps in step with the routes.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = problem_response(Problem::MethodNotAllowed, "this method is not allowed on this resource");
    let pattern = req.match_pattern();
    let methods: Vec<&str> = openapi::endpoints()
        .into_iter()
        .filter(|(_, path)| Some(*path) == pattern.as_deref())
        .map(|(m, _)| m)
        .collect();
    if let Some((name, value)) = crate::edge::allow_header(&methods) {
        response.headers_mut().insert(name, value);
    }
    response
}
