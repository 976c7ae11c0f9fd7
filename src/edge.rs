//! The HTTP edge: what every answer carries (security headers, CORS), the deadline of every
//! request, and the per-client rate limit of session creation with the client address it
//! counts by.
//!
//! Why here and not in a proxy: the service is run both behind a balancer and bare (the
//! default run, the tests), and a client must see the same contract either way.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderMap, HeaderName, HeaderValue},
        ConnectionType, Method, StatusCode,
    },
    middleware::Next,
    web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
};

use crate::{config::Settings, error::ApiError, problem::Problem};

/// What the edge middleware and the rate-limit extractor share; one per app instance.
pub struct Edge {
    request_timeout: Duration,
    hsts: bool,
    cors: CorsOrigins,
    trusted_proxies: Vec<IpRange>,
    sessions: Option<Limiter>,
}

impl Edge {
    pub fn new(settings: &Settings) -> Edge {
        Edge {
            request_timeout: settings.request_timeout,
            hsts: settings.hsts,
            cors: settings.cors_origins.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            sessions: settings.session_rate_limit.map(Limiter::new),
        }
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
    /// nearest address in `X-Forwarded-For` that is not itself a trusted proxy. Addresses
    /// further left were written by the client or proxies nobody vouches for, so are ignored.
    pub fn client_addr(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusted_proxies.iter().any(|r| r.contains(peer)) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(addr) = parse_hop(hop) else { break };
            client = addr;
            if !self.trusted_proxies.iter().any(|r| r.contains(addr)) {
                break;
            }
        }
        Some(client)
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// `N/unit`: at most N events per unit per key, in bursts of up to N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// `600/min`, `20/s`, `1000/h`; `0` is no limit (`None`).
    pub fn parse(raw: &str) -> Result<Option<RateLimit>, String> {
        let raw = raw.trim();
        if raw == "0" {
            return Ok(None);
        }
        let expected = || "expected a limit like 600/min, 20/s or 1000/h, or 0 for none".to_string();
        let (count, unit) = raw.split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        Ok((count > 0).then_some(RateLimit { count, per }))
    }
}

/// A generic cell rate limiter (a token bucket of `count` that refills evenly over `per`) with
/// one timestamp per key. Per replica: behind a balancer a client gets up to N times the limit
/// across N replicas, which still bounds it, and a shared counter would put the database on
/// the path of the very requests the limit is meant to keep cheap.
struct Limiter {
    interval: Duration,
    burst: Duration,
    state: Mutex<LimiterState>,
}

struct LimiterState {
    /// The "theoretical arrival time" of each key: when its bucket will be full again.
    due: HashMap<IpAddr, Instant>,
    sweep_at_len: usize,
}

impl Limiter {
    fn new(limit: RateLimit) -> Limiter {
        let interval = limit.per / limit.count;
        Limiter {
            interval,
            burst: limit.per.saturating_sub(interval),
            state: Mutex::new(LimiterState { due: HashMap::new(), sweep_at_len: 1024 }),
        }
    }

    /// `Err(wait)` when the key is over its limit: how long until it may try again.
    fn check(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = state.due.get(&key).copied().unwrap_or(now).max(now);
        let ahead = due - now;
        if ahead > self.burst {
            return Err(ahead - self.burst);
        }
        state.due.insert(key, due + self.interval);
        // Keys whose bucket is full again carry no information: forget them, so the map is
        // bounded by the clients of one period rather than by every client ever seen.
        if state.due.len() >= state.sweep_at_len {
            state.due.retain(|_, due| *due > now);
            state.sweep_at_len = (state.due.len() * 2).max(1024);
        }
        Ok(())
    }
}

/// The key a client is counted by: its address, or for IPv6 its /64, the block one
/// subscriber usually holds whole (counting single addresses there would count nothing).
fn limit_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// Extracting this spends one session creation of the client's quota; past it, 429
/// `rate_limited` with `Retry-After`.
pub struct SessionQuota;

impl FromRequest for SessionQuota {
    type Error = ApiError;
    type Future = std::future::Ready<Result<SessionQuota, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(edge) = req.app_data::<web::Data<Edge>>() else { return std::future::ready(Ok(SessionQuota)) };
        let Some(limiter) = &edge.sessions else { return std::future::ready(Ok(SessionQuota)) };
        let peer = req.peer_addr().map(|a| a.ip());
        let Some(client) = edge.client_addr(peer, req.headers()) else {
            return std::future::ready(Ok(SessionQuota));
        };
        std::future::ready(match limiter.check(limit_key(client), Instant::now()) {
            Ok(()) => Ok(SessionQuota),
            Err(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::new(Problem::RateLimited, "too many sessions created from this address; try again later")
                    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds.max(1))))
            }
        })
    }
}

/// An address or a CIDR range: `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(raw: &str) -> Result<IpRange, String> {
        let raw = raw.trim();
        let (addr, prefix) = raw.split_once('/').map_or((raw, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| format!("{raw:?} is not an address or CIDR range"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{raw:?}: bad prefix length"))?
            }
        };
        Ok(IpRange { addr, prefix })
    }

    pub fn parse_list(raw: &str) -> Result<Vec<IpRange>, String> {
        raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(IpRange::parse).collect()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let (a, b, width) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.prefix);
        shift >= 128 || (a >> shift) == (b >> shift)
    }
}

/// Origins a browser may call the API from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    pub fn parse(raw: &str) -> Result<CorsOrigins, String> {
        if raw.trim() == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut list = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = origin.strip_suffix('/').unwrap_or(origin);
            let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            if host.is_none_or(|h| h.is_empty() || h.contains(['/', '?', '#', ' ', '*'])) {
                return Err(format!("{origin:?} is not an origin like https://shop.example or http://localhost:3000"));
            }
            list.push(origin.to_ascii_lowercase());
        }
        Ok(if list.is_empty() { CorsOrigins::None } else { CorsOrigins::List(list) })
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let origin_str = origin.to_str().ok()?;
                list.iter().any(|o| o.eq_ignore_ascii_case(origin_str)).then(|| origin.clone())
            }
        }
    }
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match, Idempotency-Key, X-Request-Id, Last-Event-ID";
const EXPOSE_HEADERS: &str = "ETag, Location, Retry-After, X-Request-Id, Idempotent-Replayed, WWW-Authenticate";

/// JSON answers are never a document to render; a browser that is handed one anyway runs and
/// loads nothing from it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The plain docs page (`/docs?plain`) is static HTML with one inline style sheet and links:
/// nothing else may load. (The viewer at `/docs` states a policy of its own, `docs/mod.rs`.)
const DOCS_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Answers CORS preflights, and adds the security and CORS headers to every answer.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let edge = req.app_data::<web::Data<Edge>>().cloned();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed_origin = match (&edge, &origin) {
        (Some(edge), Some(origin)) => edge.cors.allow(origin),
        _ => None,
    };
    let is_preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let path_is_docs = req.path() == "/docs";
    let path_is_api = req.path().starts_with("/v1/");

    let mut res = match (&allowed_origin, is_preflight) {
        (Some(_), true) => {
            let preflight = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .finish();
            req.into_response(preflight)
        }
        _ => next.call(req).await?.map_into_boxed_body(),
    };

    let headers = res.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let csp = if path_is_docs { DOCS_CSP } else { API_CSP };
    // A page that states its own policy (the dashboard) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    if path_is_docs {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    // Tokens, sessions, carts and orders are private, and stock levels are live: no shared or
    // browser cache may keep an answer of the API.
    if path_is_api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if edge.as_ref().is_some_and(|e| e.hsts) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if let Some(edge) = &edge {
        if matches!(edge.cors, CorsOrigins::List(_)) {
            // The answer depends on the origin: caches must not hand one origin's to another.
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    if let Some(allow) = allowed_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    }
    Ok(res)
}

/// Work that is slow by nature and admin-only (the invariant check reads every level, order
/// and ledger row) gets this much instead of the request timeout.
pub const SLOW_ADMIN_LIMIT: Duration = Duration::from_secs(300);
const SLOW_ADMIN_PATHS: &[&str] = &["/v1/admin/invariants"];

/// Marks a request whose body is still being read, so that a request that runs out of time
/// while its client is still sending is told so (408), not blamed on the database.
pub struct BodyPending;

/// Bounds the time from a request's arrival to its answer: past `STOCKCART_REQUEST_TIMEOUT`
/// the handler is dropped (its transaction rolls back) and the client hears 503
/// `database_unavailable` with `Retry-After`, or 408 when its own body was still arriving.
/// Pool acquire and lock timeouts usually answer first; this covers what they cannot, such as
/// a database that accepted a connection and then froze.
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(edge) = req.app_data::<web::Data<Edge>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let limit = if SLOW_ADMIN_PATHS.contains(&req.path()) {
        edge.request_timeout.max(SLOW_ADMIN_LIMIT)
    } else {
        edge.request_timeout
    };
    let http = req.request().clone();
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => res.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            let body_pending = http.extensions().get::<BodyPending>().is_some();
            let mut response = if body_pending {
                let mut r =
                    ApiError::new(Problem::RequestTimeout, "the request body took too long to arrive").error_response();
                // The rest of the body may still come: the connection cannot carry another request.
                r.head_mut().set_connection_type(ConnectionType::Close);
                r
            } else {
                tracing::warn!(limit_ms = limit.as_millis() as u64, "request deadline passed");
                ApiError::unavailable("the database did not answer in time; try again").error_response()
            };
            if response.status() == StatusCode::SERVICE_UNAVAILABLE
                && !response.headers().contains_key(header::RETRY_AFTER)
            {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Ok(ServiceResponse::new(http, response))
        }
    }
}

/// Headers that name a response's allowed methods (`Allow`), for the 405 handler.
pub fn allow_header(methods: &[&str]) -> Option<(HeaderName, HeaderValue)> {
    if methods.is_empty() {
        return None;
    }
    let value = methods.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
    HeaderValue::from_str(&value).ok().map(|v| (header::ALLOW, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(proxies: &str) -> Edge {
        Edge {
            request_timeout: Duration::from_secs(5),
            hsts: false,
            cors: CorsOrigins::None,
            trusted_proxies: IpRange::parse_list(proxies).unwrap(),
            sessions: None,
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_client_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let e = edge("10.0.0.0/8, ::1");
        let h = xff(&["6.6.6.6, 1.2.3.4, 10.1.1.1"]);
        assert_eq!(e.client_addr(ip("10.0.0.2"), &h), ip("1.2.3.4"));
        assert_eq!(e.client_addr(ip("9.9.9.9"), &h), ip("9.9.9.9"));
        assert_eq!(e.client_addr(ip("::1"), &xff(&["1.2.3.4:5678"])), ip("1.2.3.4"));
        assert_eq!(e.client_addr(ip("::1"), &xff(&["[2001:db8::1]:80"])), ip("2001:db8::1"));
        assert_eq!(e.client_addr(ip("::ffff:10.0.0.2"), &xff(&["5.5.5.5", "7.7.7.7"])), ip("7.7.7.7"));
        assert_eq!(e.client_addr(ip("10.0.0.2"), &xff(&["bogus"])), ip("10.0.0.2"));
        assert_eq!(e.client_addr(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        assert_eq!(edge("").client_addr(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn ranges_parse_and_match() {
        let r = IpRange::parse("192.168.0.0/16").unwrap();
        assert!(r.contains("192.168.4.5".parse().unwrap()) && !r.contains("192.169.0.1".parse().unwrap()));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(!IpRange::parse("::/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpRange::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "fd00::/129", "example.com", "10.0.0.0/x"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_parse() {
        assert_eq!(RateLimit::parse("600/min").unwrap(), Some(RateLimit { count: 600, per: Duration::from_secs(60) }));
        assert_eq!(RateLimit::parse("20/s").unwrap(), Some(RateLimit { count: 20, per: Duration::from_secs(1) }));
        assert_eq!(RateLimit::parse("0").unwrap(), None);
        for bad in ["600", "x/min", "600/day", "-1/s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limiter_allows_a_burst_then_one_per_interval_per_key() {
        let limiter = Limiter::new(RateLimit { count: 3, per: Duration::from_secs(3) });
        let (a, b) = ("1.1.1.1".parse().unwrap(), "2.2.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(a, t0).is_ok());
        }
        let wait = limiter.check(a, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.check(b, t0).is_ok());
        assert!(limiter.check(a, t0 + Duration::from_secs(1)).is_ok());
        assert!(limiter.check(a, t0 + Duration::from_secs(1)).is_err());
        for _ in 0..3 {
            assert!(limiter.check(a, t0 + Duration::from_secs(10)).is_ok());
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
    }

    #[test]
    fn cors_origins_parse() {
        assert_eq!(CorsOrigins::parse("*").unwrap(), CorsOrigins::Any);
        assert_eq!(
            CorsOrigins::parse("https://Shop.example/, http://localhost:3000").unwrap(),
            CorsOrigins::List(vec!["https://shop.example".into(), "http://localhost:3000".into()])
        );
        for bad in ["shop.example", "https://shop.example/path", "ftp://x", "https://"] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
        let list = CorsOrigins::parse("https://shop.example").unwrap();
        assert!(list.allow(&HeaderValue::from_static("https://shop.example")).is_some());
        assert!(list.allow(&HeaderValue::from_static("https://evil.example")).is_none());
    }
}
