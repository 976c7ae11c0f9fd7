//! Authentication extractors: `Shopper` (a session token) and `Admin` (the admin token).
//! A missing or unknown token is 401 with `WWW-Authenticate: Bearer`; a session token on an
//! admin endpoint is 403. Session reads are coalesced per replica (`reads`).

pub mod reads;

use std::{
    future::{ready, Future, Ready},
    pin::Pin,
};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{
    domain::{SessionToken, TokenHash},
    error::ApiError,
    problem::Problem,
    state::{AppState, Worker},
    store::sessions::{self, SessionRow},
};

/// The authenticated shopper: the session, its cart's current version and the catalog
/// revision, all from one read (see `cache.rs` for why that is all a cart read needs).
pub struct Shopper {
    pub session_id: Uuid,
    pub cart_id: Uuid,
    pub cart_version: i64,
    pub catalog_revision: i64,
    pub customer_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub struct Admin;

/// A session token, not yet looked up: for endpoints that authenticate inside their own
/// database work (checkout authenticates a whole batch of requests with one read).
pub struct SessionBearer(pub TokenHash);

impl FromRequest for SessionBearer {
    type Error = ApiError;
    type Future = Ready<Result<SessionBearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            bearer(req)
                .map(|t| SessionBearer(TokenHash::of(t)))
                .ok_or_else(|| ApiError::unauthorized("a session token is required")),
        )
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone()
}

impl FromRequest for Shopper {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Shopper, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(TokenHash::of);
        let state = state(req);
        let worker = req.app_data::<Worker>().expect("WorkerState is registered").clone();
        Box::pin(async move {
            let hash = token.ok_or_else(|| ApiError::unauthorized("a session token is required"))?;
            let row: SessionRow = worker.sessions.read(hash).await?.ok_or_else(ApiError::unknown_session)?;
            let ttl = state.settings.session_ttl;
            let mut expires_at = row.expires_at;
            if sessions::needs_slide(expires_at, ttl) {
                if let Some(slid) = sessions::touch(&state.pool, row.id, ttl).await? {
                    expires_at = slid;
                }
            }
            Ok(Shopper {
                session_id: row.id,
                cart_id: row.cart_id,
                cart_version: row.cart_version,
                catalog_revision: row.catalog_revision,
                customer_id: row.customer_id,
                expires_at,
            })
        })
    }
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_owned);
        let state = state(req);
        Box::pin(async move {
            let token = token.ok_or_else(|| ApiError::unauthorized("the admin token is required"))?;
            if constant_time_eq(token.as_bytes(), state.admin_token.expose_secret().as_bytes()) {
                return Ok(Admin);
            }
            // Told apart by its form, not looked up: a wrong admin token must cost the database
            // nothing, or guessing it would be a way to load the database without a token.
            if SessionToken::is_well_formed(&token) {
                return Err(ApiError::new(Problem::Forbidden, "a session token cannot use admin endpoints"));
            }
            Err(ApiError::unauthorized("unknown admin token"))
        })
    }
}

/// A reader of `/metrics`: anyone, unless `STOCKCART_METRICS_TOKEN` is set, then only its bearer.
pub struct MetricsReader;

impl FromRequest for MetricsReader {
    type Error = ApiError;
    type Future = Ready<Result<MetricsReader, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let Some(expected) = &state.settings.metrics_token else { return ready(Ok(MetricsReader)) };
        let sent = bearer(req).unwrap_or("");
        ready(if constant_time_eq(sent.as_bytes(), expected.expose_secret().as_bytes()) {
            Ok(MetricsReader)
        } else {
            Err(ApiError::unauthorized("the metrics token is required"))
        })
    }
}
