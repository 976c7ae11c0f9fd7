//! Every failure the API reports is an `ApiError`: a `Problem` (code, status, title), a
//! detail and extension members, rendered as an RFC 9457 problem document.
//!
//! Database errors are mapped to API errors here and nowhere else: a constraint that fires
//! is either a client-visible rule (mapped by name) or a bug, which is logged and answered
//! with a 500 rather than allowed to corrupt data.

use actix_web::{
    http::{
        header::{self, HeaderName, HeaderValue},
        StatusCode,
    },
    HttpResponse, ResponseError,
};
use serde_json::{Map, Value};

use crate::{
    domain::{Invalid, MAX_LINE_QUANTITY},
    problem::{shortages, Problem, Shortage},
};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Clone, Debug)]
pub struct ApiError {
    pub problem: Problem,
    pub detail: String,
    pub extensions: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(problem: Problem, detail: impl Into<String>) -> ApiError {
        let mut err = ApiError { problem, detail: detail.into(), extensions: Map::new(), headers: Vec::new() };
        // Headers that every occurrence of the problem carries, so no call site can forget them.
        match problem {
            Problem::Unauthorized => err.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            Problem::DatabaseUnavailable => err.headers.push((header::RETRY_AFTER, HeaderValue::from_static("1"))),
            _ => {}
        }
        err
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Adds an extension member to the problem document (e.g. `shortages`).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> ApiError {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// A 412 carrying the current representation, both as `current` and flattened, and its ETag.
    pub fn version_mismatch(current_version: i64, current: Value) -> ApiError {
        let mut err = ApiError::new(
            Problem::VersionMismatch,
            format!("If-Match does not name the current version, which is {current_version}"),
        )
        .with_header(header::ETAG, etag(current_version));
        if let Value::Object(fields) = &current {
            for (k, v) in fields {
                err.extensions.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        err.with("current", current)
    }

    pub fn unauthorized(detail: &str) -> ApiError {
        ApiError::new(Problem::Unauthorized, detail)
    }

    /// 404 for a SKU that names no product (or cannot name one).
    /// 401 for a bearer token that names no live session.
    pub fn unknown_session() -> ApiError {
        ApiError::unauthorized("unknown, expired or revoked session token")
    }

    pub fn unknown_sku(sku: &str) -> ApiError {
        ApiError::new(Problem::UnknownSku, format!("no product with sku {sku:?}"))
    }

    /// 409 for lines that ask for more than is available, with their `shortages`.
    pub fn insufficient_stock(detail: impl Into<String>, list: &[Shortage<'_>]) -> ApiError {
        let mut err = ApiError::new(Problem::InsufficientStock, detail);
        err.extensions.extend(shortages(list));
        err
    }

    pub fn invalid_query(detail: impl Into<String>) -> ApiError {
        ApiError::new(Problem::InvalidQuery, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(Problem::DatabaseUnavailable, detail)
    }

    pub fn internal() -> ApiError {
        ApiError::new(Problem::InternalError, "an unexpected error occurred; it has been logged")
    }

    pub fn body(&self) -> Value {
        self.problem.document(&self.detail, &self.extensions)
    }
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("a number is a valid header value")
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.problem.status(), self.problem.code(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.body(self.body().to_string())
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> ApiError {
        ApiError::new(invalid.problem, invalid.detail)
    }
}

/// A coalesced statement's request that got no answer (`coalesce.rs`).
impl From<crate::coalesce::Unanswered> for ApiError {
    fn from(e: crate::coalesce::Unanswered) -> ApiError {
        match e {
            crate::coalesce::Unanswered::Stopping => ApiError::unavailable("this replica is shutting down; try again"),
            crate::coalesce::Unanswered::Lost => ApiError::internal(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        if is_unreachable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            if is_too_many_connections(&err) {
                tracing::warn!("{POOL_SIZING_RULE}");
            }
            return ApiError::unavailable("the database is unavailable; try again");
        }
        if is_transient(&err) {
            tracing::warn!(error = %err, "transient database error");
            return ApiError::unavailable("the database asked to retry; try again");
        }
        if let sqlx::Error::Database(db) = &err {
            if let Some(mapped) = db.constraint().and_then(constraint_to_error) {
                return mapped;
            }
        }
        tracing::error!(error = %err, "unexpected database error");
        ApiError::internal()
    }
}

/// The database as a whole cannot take this work now, whatever the work was: no connection in
/// time, a connection that broke (a failover cuts every one), a server shutting down, crashed,
/// starting up or refusing more clients, or a node that no longer accepts writes (a demoted
/// primary, or a standby reached while the balancer has not yet noticed the promotion). A
/// commit cut this way is unknown rather than failed: the client retries (with its idempotency
/// key, for a checkout) and the database it reaches then settles it.
pub fn is_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // connection_exception (08000, 08003, 08006 ...): the connection is gone.
            Some(code) if code.starts_with("08") => true,
            // read_only_sql_transaction: a write reached a node in recovery.
            // idle_in_transaction_session_timeout: the server ended this session.
            // too_many_connections; admin_shutdown, crash_shutdown, cannot_connect_now.
            Some("25006" | "25P03" | "53300" | "57P01" | "57P02" | "57P03") => true,
            _ => false,
        },
        _ => false,
    }
}

/// This transaction lost a race the client may simply retry: serialization failure, deadlock,
/// lock timeout, statement timeout (query_canceled, 57014: nothing else cancels our
/// statements; it races the request deadline, which answers 503 too, and `scripts/faults`
/// caught it answering 500); or the database was unreachable (`is_unreachable`).
pub fn is_transient(err: &sqlx::Error) -> bool {
    is_unreachable(err)
        || matches!(err, sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03" | "57014")))
}

/// `too_many_connections`: every replica's pools together ask for more than the server allows.
pub fn is_too_many_connections(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("53300"))
}

/// What to do about `too_many_connections`, said where it is met (start-up, logs, README).
pub const POOL_SIZING_RULE: &str = "each replica opens up to 2 x STOCKCART_POOL_SIZE + 4 + STOCKCART_WORKERS + \
     STOCKCART_CHECKOUT_WORKERS connections (the request pool, the pool of product reads, the readiness check, the \
     event listener, the cart change writer, the webhook worker, each HTTP worker's session reader and each \
     checkout worker); keep replicas x (2 x STOCKCART_POOL_SIZE + 4 + STOCKCART_WORKERS + \
     STOCKCART_CHECKOUT_WORKERS) <= max_connections - headroom (superuser_reserved_connections, \
     replication, HA agent, administrators): fewer replicas, a smaller STOCKCART_POOL_SIZE, or a larger \
     max_connections";

/// Constraints that can fire on a client's behalf under a race the code does not pre-check.
/// Every other constraint violation is a bug and surfaces as a logged 500.
fn constraint_to_error(constraint: &str) -> Option<ApiError> {
    match constraint {
        "stock_on_hand_covers_reserved" | "stock_reserved_nonnegative" => {
            Some(ApiError::new(Problem::InsufficientStock, "not enough stock for this change"))
        }
        "cart_lines_quantity" => {
            Some(ApiError::new(Problem::InvalidQuantity, format!("quantity must be 1 to {MAX_LINE_QUANTITY}")))
        }
        _ => None,
    }
}
