//! Authentication extractors: `Shopper` (a session token) and `Admin` (the admin token).
//! A missing or unknown token is 401 with `WWW-Authenticate: Bearer`; a session token on an
//! admin endpoint is 403.

use std::{future::Future, pin::Pin, time::Duration};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::TokenHash,
    error::ApiError,
    startup::AppState,
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

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone()
}

/// Sessions slide in steps: a read extends the deadline only when it has moved by at least
/// this much, so a hot session costs one write a minute, not one per request.
fn slide_step(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std((ttl / 100).min(Duration::from_secs(60))).unwrap_or(chrono::Duration::seconds(60))
}

impl FromRequest for Shopper {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Shopper, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(TokenHash::of);
        let state = state(req);
        Box::pin(async move {
            let hash = token.ok_or_else(|| ApiError::unauthorized("a session token is required"))?;
            let row: SessionRow = sessions::authenticate(&state.pool, &hash)
                .await?
                .ok_or_else(|| ApiError::unauthorized("unknown, expired or revoked session token"))?;
            let ttl = state.settings.session_ttl;
            let mut expires_at = row.expires_at;
            let full = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
            if full - expires_at >= slide_step(ttl) {
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
            if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
                return Ok(Admin);
            }
            if sessions::exists(&state.pool, &TokenHash::of(&token)).await? {
                return Err(ApiError::forbidden("a session token cannot use admin endpoints"));
            }
            Err(ApiError::unauthorized("unknown admin token"))
        })
    }
}
