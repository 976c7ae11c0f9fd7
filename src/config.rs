//! Settings, parsed once from the environment and passed down explicitly.
//!
//! Nothing here is global: tests build their own `Settings` (see `Settings::from_lookup`)
//! so that many app instances with different settings can run in one process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

use crate::{
    domain::Currency,
    edge::{CorsOrigins, IpRange, RateLimit},
};

/// Every variable the service reads, with its default and meaning: the one place a default is
/// written. Parsing takes its defaults from here, `--help` prints it, and a test checks that
/// the README's table says the same. A default in parentheses is a description, not a value.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("STOCKCART_BIND", "127.0.0.1:8080", "address and port to listen on"),
    ("DATABASE_URL", "(unset)", "PostgreSQL URL; when unset, a private cluster is started in STOCKCART_DATA_DIR"),
    ("STOCKCART_DATA_DIR", "./.stockcart", "where the private cluster and its generated admin token live"),
    ("STOCKCART_POOL_SIZE", "16", "maximum database connections per replica"),
    (
        "STOCKCART_ADMIN_TOKEN",
        "(required with DATABASE_URL)",
        "bearer token of the /v1/admin endpoints (at least 16 characters)",
    ),
    ("STOCKCART_CURRENCY", "EUR", "the one currency of this deployment (ISO 4217)"),
    ("STOCKCART_SESSION_TTL", "30d", "sessions expire after this much inactivity"),
    ("STOCKCART_PAYMENT_TIMEOUT", "15m", "unpaid orders expire this long after checkout"),
    ("STOCKCART_CART_CACHE", "10000", "carts kept assembled in memory per replica (0 disables the cache)"),
    ("STOCKCART_CART_CACHE_IDLE", "10m", "a cached cart not read for this long is dropped"),
    ("STOCKCART_EXPIRY_INTERVAL", "1s", "how often each replica looks for unpaid orders past their deadline"),
    ("STOCKCART_PURGE_INTERVAL", "5m", "how often each replica purges expired sessions and old idempotency keys"),
    (
        "STOCKCART_CHECKOUT_WORKERS",
        "1",
        "checkout transactions a replica runs at once; queued checkouts share them in batches",
    ),
    ("STOCKCART_CHECKOUT_BATCH", "64", "most checkouts coalesced into one transaction"),
    ("STOCKCART_EVENT_RETENTION", "30d", "events are kept this long, then deleted (the ledger is kept forever)"),
    ("STOCKCART_STREAM_LIMIT", "10000", "event stream connections per replica; past it, 503 with Retry-After"),
    (
        "STOCKCART_WEBHOOK_RETRY_SCHEDULE",
        "5s,5m,30m,2h,5h,10h,14h,20h,24h",
        "waits between a webhook delivery's attempts (each with up to 10% jitter); after the last it fails",
    ),
    ("STOCKCART_WEBHOOK_TIMEOUT", "10s", "a webhook attempt without a 2xx answer by then has failed"),
    ("STOCKCART_WEBHOOK_CONCURRENCY", "4", "webhook requests in flight per endpoint and replica"),
    (
        "STOCKCART_WEBHOOK_ALLOW_PRIVATE",
        "false",
        "true lets webhooks reach loopback, private and link-local addresses (tests, private networks)",
    ),
    (
        "STOCKCART_SECRET_KEY",
        "(derived from STOCKCART_ADMIN_TOKEN)",
        "key that seals webhook secrets in the database (16+ characters; the same on every replica)",
    ),
    (
        "STOCKCART_ROLLUP_INTERVAL",
        "3s",
        "how often each replica rolls new movements up for reports (0: not on this replica)",
    ),
    ("STOCKCART_WORKERS", "(number of cores)", "HTTP worker threads"),
    ("STOCKCART_SHUTDOWN_TIMEOUT", "30s", "how long in-flight requests may take to finish on SIGTERM"),
    ("STOCKCART_LOG_FORMAT", "human", "log format: human or json"),
    (
        "STOCKCART_REQUEST_TIMEOUT",
        "5s",
        "every request is answered within this (503 database_unavailable when the database is too slow); also the statement_timeout",
    ),
    (
        "STOCKCART_SESSION_RATE_LIMIT",
        "600/min",
        "session creations per client address and replica, like 600/min, 20/s or 1000/h; 0 turns the limit off",
    ),
    (
        "STOCKCART_TRUSTED_PROXIES",
        "(none)",
        "comma-separated addresses or CIDR ranges of proxies whose X-Forwarded-For names the client",
    ),
    (
        "STOCKCART_CORS_ORIGINS",
        "(none)",
        "comma-separated origins (https://shop.example) allowed to call the API from a browser, or *",
    ),
    ("STOCKCART_HSTS", "false", "true behind TLS: answers carry Strict-Transport-Security"),
    ("STOCKCART_METRICS_TOKEN", "(unset)", "when set, /metrics requires Authorization: Bearer <this token>"),
    ("RUST_LOG", "info,sqlx=warn", "log filter (tracing-subscriber EnvFilter syntax)"),
];

/// The default of a variable, as `VARIABLES` writes it.
pub fn default_of(name: &str) -> &'static str {
    VARIABLES.iter().find(|(n, _, _)| *n == name).map(|(_, d, _)| *d).expect("every variable read is in VARIABLES")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// `Debug` prints the secrets (the admin token, and the database URL, which may carry a
/// password) as `[REDACTED]`, so no log line or panic message can leak them.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: Option<SecretString>,
    pub data_dir: PathBuf,
    pub pool_size: u32,
    pub admin_token: Option<SecretString>,
    pub currency: Currency,
    pub session_ttl: Duration,
    pub payment_timeout: Duration,
    pub cart_cache_capacity: u64,
    pub cart_cache_idle: Duration,
    pub expiry_interval: Duration,
    pub purge_interval: Duration,
    pub checkout_workers: usize,
    pub checkout_batch: usize,
    pub event_retention: Duration,
    /// Zero turns the report rollup follower off on this replica (reports stay exact).
    pub rollup_interval: Duration,
    pub stream_limit: usize,
    pub webhook_retry_schedule: Vec<Duration>,
    pub webhook_timeout: Duration,
    pub webhook_concurrency: usize,
    pub webhook_allow_private: bool,
    pub secret_key: Option<SecretString>,
    pub workers: Option<usize>,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub request_timeout: Duration,
    /// `None` when turned off.
    pub session_rate_limit: Option<RateLimit>,
    pub trusted_proxies: Vec<IpRange>,
    pub cors_origins: CorsOrigins,
    pub hsts: bool,
    pub metrics_token: Option<SecretString>,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses settings from any name -> value lookup; every error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let parse_or = |name: &str| var(name).unwrap_or_else(|| default_of(name).to_owned());
        let duration = |name: &str| {
            let raw = parse_or(name);
            parse_duration(&raw).map_err(|e| format!("{name}={raw:?}: {e}"))
        };
        let number = |name: &str| {
            let raw = parse_or(name);
            raw.trim().parse::<u64>().map_err(|_| format!("{name}={raw:?}: expected a non-negative integer"))
        };

        let bind_raw = parse_or("STOCKCART_BIND");
        let bind = parse_bind(&bind_raw).ok_or_else(|| {
            format!("STOCKCART_BIND={bind_raw:?}: expected an address like 127.0.0.1:8080 or localhost:8080")
        })?;
        let currency_raw = parse_or("STOCKCART_CURRENCY");
        let currency = Currency::parse(&currency_raw)
            .map_err(|_| format!("STOCKCART_CURRENCY={currency_raw:?}: expected three capital letters, like EUR"))?;
        let pool_size = number("STOCKCART_POOL_SIZE")?;
        if !(1..=1000).contains(&pool_size) {
            return Err(format!("STOCKCART_POOL_SIZE={pool_size}: expected 1 to 1000"));
        }
        let admin_token = var("STOCKCART_ADMIN_TOKEN");
        if let Some(token) = &admin_token {
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("STOCKCART_ADMIN_TOKEN: expected no whitespace or control characters".into());
            }
            if token.len() < 16 {
                eprintln!(
                    "stockcart: warning: STOCKCART_ADMIN_TOKEN is shorter than 16 characters; use a long random token"
                );
            }
        }
        let workers = match var("STOCKCART_WORKERS") {
            None => None,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => Some(n),
                _ => return Err(format!("STOCKCART_WORKERS={raw:?}: expected 1 to 256")),
            },
        };
        let log_format = match parse_or("STOCKCART_LOG_FORMAT").as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return Err(format!("STOCKCART_LOG_FORMAT={other:?}: expected human or json")),
        };
        let session_ttl = duration("STOCKCART_SESSION_TTL")?;
        let payment_timeout = duration("STOCKCART_PAYMENT_TIMEOUT")?;
        for (name, value) in [("STOCKCART_SESSION_TTL", session_ttl), ("STOCKCART_PAYMENT_TIMEOUT", payment_timeout)] {
            if value.is_zero() {
                return Err(format!("{name}: must be longer than zero"));
            }
        }
        let expiry_interval = duration("STOCKCART_EXPIRY_INTERVAL")?;
        let purge_interval = duration("STOCKCART_PURGE_INTERVAL")?;
        if expiry_interval.is_zero() || purge_interval.is_zero() {
            return Err("STOCKCART_EXPIRY_INTERVAL and STOCKCART_PURGE_INTERVAL must be longer than zero".into());
        }

        let checkout_workers = number("STOCKCART_CHECKOUT_WORKERS")?;
        let checkout_batch = number("STOCKCART_CHECKOUT_BATCH")?;
        if !(1..=64).contains(&checkout_workers) || !(1..=1000).contains(&checkout_batch) {
            return Err("STOCKCART_CHECKOUT_WORKERS must be 1 to 64 and STOCKCART_CHECKOUT_BATCH 1 to 1000".into());
        }

        let event_retention = duration("STOCKCART_EVENT_RETENTION")?;
        if event_retention.is_zero() {
            return Err("STOCKCART_EVENT_RETENTION: must be longer than zero".into());
        }
        let stream_limit = number("STOCKCART_STREAM_LIMIT")?;
        if stream_limit > 1_000_000 {
            return Err(format!("STOCKCART_STREAM_LIMIT={stream_limit}: expected 0 to 1000000"));
        }

        let schedule_raw = parse_or("STOCKCART_WEBHOOK_RETRY_SCHEDULE");
        let webhook_retry_schedule = schedule_raw
            .split(',')
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("STOCKCART_WEBHOOK_RETRY_SCHEDULE={schedule_raw:?}: {e}"))?;
        let webhook_timeout = duration("STOCKCART_WEBHOOK_TIMEOUT")?;
        if webhook_timeout.is_zero() {
            return Err("STOCKCART_WEBHOOK_TIMEOUT: must be longer than zero".into());
        }
        let webhook_concurrency = number("STOCKCART_WEBHOOK_CONCURRENCY")?;
        if !(1..=256).contains(&webhook_concurrency) {
            return Err(format!("STOCKCART_WEBHOOK_CONCURRENCY={webhook_concurrency}: expected 1 to 256"));
        }
        let webhook_allow_private = match parse_or("STOCKCART_WEBHOOK_ALLOW_PRIVATE").trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(format!("STOCKCART_WEBHOOK_ALLOW_PRIVATE={other:?}: expected true or false")),
        };
        let secret_key = var("STOCKCART_SECRET_KEY");
        if secret_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err("STOCKCART_SECRET_KEY: expected at least 16 characters".into());
        }
        let request_timeout = duration("STOCKCART_REQUEST_TIMEOUT")?;
        if request_timeout < Duration::from_millis(100) || request_timeout > Duration::from_secs(3600) {
            return Err("STOCKCART_REQUEST_TIMEOUT: expected 100ms to 1h".into());
        }
        let rate_raw = parse_or("STOCKCART_SESSION_RATE_LIMIT");
        let session_rate_limit =
            RateLimit::parse(&rate_raw).map_err(|e| format!("STOCKCART_SESSION_RATE_LIMIT={rate_raw:?}: {e}"))?;
        let trusted_proxies = match var("STOCKCART_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => IpRange::parse_list(&raw).map_err(|e| format!("STOCKCART_TRUSTED_PROXIES={raw:?}: {e}"))?,
        };
        let cors_origins = match var("STOCKCART_CORS_ORIGINS") {
            None => CorsOrigins::None,
            Some(raw) => CorsOrigins::parse(&raw).map_err(|e| format!("STOCKCART_CORS_ORIGINS={raw:?}: {e}"))?,
        };
        let hsts = match parse_or("STOCKCART_HSTS").trim() {
            "true" => true,
            "false" => false,
            other => return Err(format!("STOCKCART_HSTS={other:?}: expected true or false")),
        };
        let metrics_token = var("STOCKCART_METRICS_TOKEN");
        if metrics_token.as_deref().is_some_and(|t| t.chars().any(|c| c.is_whitespace() || c.is_control())) {
            return Err("STOCKCART_METRICS_TOKEN: expected no whitespace or control characters".into());
        }

        Ok(Settings {
            request_timeout,
            session_rate_limit,
            trusted_proxies,
            cors_origins,
            hsts,
            metrics_token: metrics_token.map(SecretString::from),
            bind,
            webhook_retry_schedule,
            webhook_timeout,
            webhook_concurrency: webhook_concurrency as usize,
            webhook_allow_private,
            secret_key: secret_key.map(SecretString::from),
            event_retention,
            rollup_interval: duration("STOCKCART_ROLLUP_INTERVAL")?,
            stream_limit: stream_limit as usize,
            checkout_workers: checkout_workers as usize,
            checkout_batch: checkout_batch as usize,
            database_url: var("DATABASE_URL").map(SecretString::from),
            data_dir: PathBuf::from(parse_or("STOCKCART_DATA_DIR")),
            pool_size: pool_size as u32,
            admin_token: admin_token.map(SecretString::from),
            currency,
            session_ttl,
            payment_timeout,
            cart_cache_capacity: number("STOCKCART_CART_CACHE")?,
            cart_cache_idle: duration("STOCKCART_CART_CACHE_IDLE")?,
            expiry_interval,
            purge_interval,
            workers,
            shutdown_timeout: duration("STOCKCART_SHUTDOWN_TIMEOUT")?,
            log_format,
        })
    }
}

/// An address to listen on: `127.0.0.1:8080`, `[::1]:8080` or a resolvable `localhost:8080`.
fn parse_bind(raw: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    raw.parse().ok().or_else(|| raw.to_socket_addrs().ok()?.next())
}

/// Parses durations written like `500ms`, `5s`, `15m`, `12h`, `30d` (a bare number is seconds).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let unit = if unit.is_empty() && !digits.is_empty() { "s" } else { unit };
    let n: u64 = digits.parse().map_err(|_| "expected a duration like 5s, 15m or 30d".to_string())?;
    let seconds =
        |factor: u64| n.checked_mul(factor).map(Duration::from_secs).ok_or_else(|| "duration too large".to_string());
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err("expected a unit: ms, s, m, h or d (like 5s, 15m, 30d)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_sound() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.session_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(s.payment_timeout, Duration::from_secs(15 * 60));
        assert_eq!(s.currency.as_str(), "EUR");
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert_eq!(s.session_rate_limit, RateLimit::parse("600/min").unwrap());
        assert!(s.trusted_proxies.is_empty() && s.cors_origins == CorsOrigins::None && !s.hsts);
        assert!(s.metrics_token.is_none());
        assert!(settings(&[("STOCKCART_SESSION_RATE_LIMIT", "0")]).unwrap().session_rate_limit.is_none());
    }

    #[test]
    fn the_readme_lists_every_variable_with_its_default() {
        let readme = include_str!("../README.md");
        let rows: HashMap<&str, &str> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name, *cells.get(2)?))
            })
            .collect();
        for (name, default, _) in VARIABLES {
            let written = rows.get(name).unwrap_or_else(|| panic!("README.md's configuration table lacks {name}"));
            assert_eq!(written.replace('`', ""), *default, "README.md's default of {name}");
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let s = settings(&[
            ("STOCKCART_ADMIN_TOKEN", "adm_do-not-print-me"),
            ("DATABASE_URL", "postgres://app:hunter2@db/stockcart"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("do-not-print-me") && !printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(2_592_000));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("five seconds").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("STOCKCART_BIND", "nowhere"),
            ("STOCKCART_CURRENCY", "euro"),
            ("STOCKCART_SESSION_TTL", "soon"),
            ("STOCKCART_PAYMENT_TIMEOUT", "0s"),
            ("STOCKCART_POOL_SIZE", "0"),
            ("STOCKCART_ADMIN_TOKEN", "has space"),
            ("STOCKCART_LOG_FORMAT", "xml"),
            ("STOCKCART_REQUEST_TIMEOUT", "0s"),
            ("STOCKCART_SESSION_RATE_LIMIT", "600/fortnight"),
            ("STOCKCART_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("STOCKCART_CORS_ORIGINS", "shop.example"),
            ("STOCKCART_HSTS", "yes"),
            ("STOCKCART_METRICS_TOKEN", "a b"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }
}
