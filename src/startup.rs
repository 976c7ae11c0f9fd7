//! Builds the application: pool, caches, background tasks and the actix server.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use secrecy::{ExposeSecret, SecretString};
use std::str::FromStr;

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

use crate::{
    auth::reads::SessionReads,
    cache::CartCache,
    cart_changes::CartChanges,
    checkout::Checkouts,
    config::Settings,
    edge::{self, Edge},
    events::Hub,
    memory::reads::ViewReads,
    metrics::Metrics,
    middleware,
    routes::{self, ops::Readiness},
    state::{AppState, WorkerState},
    tasks,
    webhooks::seal::Sealer,
};

pub struct Application {
    port: u16,
    server: Server,
    background: Vec<tokio::task::AbortHandle>,
}

/// A pool that fails fast when the database is gone, so requests answer 503 quickly.
///
/// Its connections are not given `bounded_release`: that is a second round trip on every
/// request (sqlx pings each returned connection anyway), and the benchmark showed the hot
/// paths paying for it. A request never waits on a release; a database that froze holds the
/// released connections until it answers again, and requests meanwhile fail within their
/// deadline, as they would anyway.
fn pool_options(settings: &Settings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.pool_size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
}

/// How long a connection coming back to the pool may take to prove it still answers.
const RELEASE_CHECK: Duration = Duration::from_secs(2);

/// sqlx pings every connection that comes back to the pool, with no time limit: one abandoned
/// by a request that ran out of time, on a database that froze or vanished, would hold its
/// slot until the kernel gives up on the TCP connection (many minutes; sqlx offers no client
/// keepalive). Pinged here with a limit first, such a connection is closed instead.
fn bounded_release(options: PgPoolOptions) -> PgPoolOptions {
    options.after_release(|conn, _| {
        Box::pin(async move {
            match tokio::time::timeout(RELEASE_CHECK, sqlx::Connection::ping(conn)).await {
                Ok(Ok(())) => Ok(true),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            }
        })
    })
}

/// Session settings of every pooled connection, all sized by the request timeout, because a
/// request gives up then anyway:
/// - `statement_timeout`: the server stops work a request no longer waits for, so a slow
///   database is not kept busy by requests that already answered 503;
/// - `lock_timeout` (at most 10 s, and shorter than a request): a lock wait gives up first,
///   with a retryable error (503; `idempotency_in_progress` for a duplicate checkout) rather
///   than being cut off by the request deadline;
/// - TCP keepalives and `idle_in_transaction_session_timeout`: the server notices a replica
///   that died or froze mid-transaction and releases its locks.
fn connect_options(settings: &Settings, url: &str) -> Result<PgConnectOptions, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("invalid DATABASE_URL: {e}"))?;
    let request_ms = settings.request_timeout.as_millis();
    let statement_timeout = format!("{request_ms}ms");
    let lock_timeout = format!("{}ms", (request_ms * 4 / 5).min(10_000));
    Ok(options.options([
        ("lock_timeout", lock_timeout.as_str()),
        ("statement_timeout", statement_timeout.as_str()),
        ("idle_in_transaction_session_timeout", "60s"),
        ("tcp_keepalives_idle", "30"),
        ("tcp_keepalives_interval", "10"),
        ("tcp_keepalives_count", "3"),
    ]))
}

/// Connects now: used at start-up, where an unreachable database should stop the start, and
/// one that refuses more clients should say how the pools are sized against it.
pub async fn connect(settings: &Settings, url: &str) -> Result<PgPool, String> {
    let options = connect_options(settings, url)?;
    // One bare connection first: the pool retries a refused connection until its acquire
    // timeout and then reports only that it timed out, hiding why.
    let probe =
        tokio::time::timeout(Duration::from_secs(10), <sqlx::PgConnection as sqlx::Connection>::connect_with(&options))
            .await
            .map_err(|_| "cannot connect to the database: no answer within 10 s".to_owned())?
            .map_err(|e| {
                if crate::error::is_too_many_connections(&e) {
                    format!("the database refuses connections ({e}): {}", crate::error::POOL_SIZING_RULE)
                } else {
                    format!("cannot connect to the database: {e}")
                }
            })?;
    let _ = sqlx::Connection::close(probe).await;
    let pool = pool_options(settings)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    // Pools open connections as requests need them, so a server without room for them all
    // would refuse them under load, one 503 at a time: say so now. A warning, not a refusal:
    // other clients may be about to close theirs.
    let workers = settings.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Request pool and product reads; the readiness check, the event listener and the webhook
    // worker, one each; the cart change writer; each HTTP worker's session reader; each
    // checkout worker.
    let most = 2 * i64::from(settings.pool_size)
        + 3
        + i64::from(crate::cart_changes::CONNECTIONS)
        + (workers * crate::auth::reads::READERS) as i64
        + settings.checkout_workers as i64;
    if let Ok(room) = crate::store::server::connection_room(&pool).await {
        // Our own start-up connection is counted as open, and is one of ours.
        if room.free() + 1 < most {
            tracing::warn!(
                max_connections = room.max_connections,
                reserved = room.reserved,
                open = room.open,
                this_replica_may_open = most,
                "the database has room for {} more connections: {}",
                room.free() + 1,
                crate::error::POOL_SIZING_RULE
            );
        }
    }
    Ok(pool)
}

/// Connects on first use (tests, tools).
pub fn connect_lazy(settings: &Settings, url: &str) -> Result<PgPool, String> {
    Ok(pool_options(settings).connect_lazy_with(connect_options(settings, url)?))
}

/// The pool of product reads that record a view: the request pool's settings, and commits
/// that do not wait for the WAL flush (see `AppState::views_pool`). As large as the request
/// pool: at half its size, product reads queued for a connection (measured: 0.46 x).
fn views_pool(settings: &Settings, pool: &PgPool) -> PgPool {
    let options = pool.connect_options().as_ref().clone().options([("synchronous_commit", "off")]);
    side_pool(settings.pool_size, options)
}

/// The pool of one worker's session reads (`auth::reads`): the request pool's settings, a
/// connection per read in flight.
fn session_reads_pool(pool: &PgPool) -> PgPool {
    side_pool(crate::auth::reads::READERS as u32, pool.connect_options().as_ref().clone())
}

/// The pool of cart changes (`cart_changes`): the request pool's settings, and statements
/// planned generically, without JIT. A batch's statements take arrays whose length varies from
/// batch to batch; PostgreSQL would plan them afresh for each batch (custom plans), which costs
/// more than running them, while the generic plan (index lookups per element) is right for
/// every length. A generic plan guesses its arrays' lengths, and where the tables have no
/// statistics yet (a new database) its cost can pass `jit_above_cost`: compiling the statement
/// then took 55 ms of an 80 ms change. Set per connection rather than per transaction, because
/// a batch's first round is two statements with no transaction around them.
fn cart_changes_pool(pool: &PgPool) -> PgPool {
    let options =
        pool.connect_options().as_ref().clone().options([("plan_cache_mode", "force_generic_plan"), ("jit", "off")]);
    side_pool(crate::cart_changes::CONNECTIONS, options)
}

/// The pool of the checkout workers (`checkout::queue`): a connection per worker, opened by the
/// worker itself, on the multi-threaded runtime it runs on. A connection's socket stays with the
/// runtime that opened it, and the request pool's connections are mostly opened by handlers on
/// the HTTP workers' threads: a checkout worker that took one of those had every answer of every
/// batch noticed by that HTTP worker's thread and handed over to it, a wake-up of another thread
/// per round trip. After the benchmark's get cart run (which grows the request pool from the
/// HTTP workers), spread checkout ran at 3,149-3,199 orders/s against 3,458-4,002 on the same
/// database with the replicas restarted (BENCHMARKS.md, 2026-12-04, twelfth session).
fn checkout_pool(settings: &Settings, pool: &PgPool) -> PgPool {
    side_pool(settings.checkout_workers as u32, pool.connect_options().as_ref().clone())
}

/// A pool beside the request pool for one kind of work: at most `max` connections, opened on
/// first use, none kept open for its own sake, and none pinged before each use (a round trip
/// per acquire).
fn side_pool(max: u32, options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// The pool of `/readyz`: one connection of its own, so that a request pool exhausted or
/// stuck on a frozen database cannot make the readiness check wait, nor the check take a
/// connection from requests. Its connection is pinged before each check, so that one cut by a
/// failover costs a reconnect, not a false "not ready".
fn readiness_pool(pool: &PgPool) -> PgPool {
    bounded_release(
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(1))
            .test_before_acquire(true),
    )
    .connect_lazy_with(pool.connect_options().as_ref().clone())
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and starts the background tasks.
    pub fn build(settings: Settings, pool: PgPool, admin_token: SecretString) -> std::io::Result<Application> {
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(Metrics::default());
        let edge = web::Data::new(Edge::new(&settings));
        let readiness = web::Data::new(Readiness::new(readiness_pool(&pool)));
        let settings = Arc::new(settings);
        let views_pool = views_pool(&settings, &pool);
        let carts = CartCache::new(settings.cart_cache_capacity, settings.cart_cache_idle, metrics.clone());
        let state = web::Data::new(AppState {
            checkouts: Checkouts::start(
                checkout_pool(&settings, &pool),
                settings.clone(),
                settings.checkout_workers,
                settings.checkout_batch,
            ),
            cart_changes: CartChanges::start(
                cart_changes_pool(&pool),
                settings.clone(),
                metrics.clone().into_inner(),
                carts.clone(),
            ),
            pool: pool.clone(),
            carts,
            settings: settings.clone(),
            admin_token: admin_token.clone(),
            metrics: metrics.clone(),
            events: Hub::start(pool.clone(), settings.stream_limit, metrics.clone().into_inner()),
            // Every replica must derive the same key; both sources are shared configuration.
            views: Default::default(),
            view_reads: ViewReads::start(views_pool.clone(), metrics.clone().into_inner()),
            views_pool,
            sealer: Sealer::new(settings.secret_key.as_ref().unwrap_or(&admin_token).expose_secret()),
        });
        // Streams never finish on their own: end them when a stop is asked for, so the
        // graceful shutdown is not held up by them for its whole timeout.
        let hub = state.events.clone();
        tokio::spawn(async move {
            crate::stop_requested().await;
            hub.shutdown();
        });
        let background = tasks::spawn_all(state.clone().into_inner());

        let metrics_arc = metrics.clone().into_inner();
        let mut server = HttpServer::new(move || {
            // Called by each worker as it starts, on its own thread and runtime: the reader's
            // task is spawned there.
            let worker = web::Data::new(WorkerState {
                sessions: SessionReads::start(session_reads_pool(&pool), metrics_arc.clone()),
            });
            App::new()
                .app_data(state.clone())
                .app_data(worker)
                .app_data(metrics.clone())
                .app_data(edge.clone())
                .app_data(readiness.clone())
                // The last wrapped runs first: observe sees every answer, and the edge headers go
                // on every answer. (The request deadline wraps each resource: `routes::resource`.)
                .wrap(from_fn(edge::headers))
                .wrap(from_fn(middleware::observe))
                .configure(routes::configure)
                .default_service(web::to(routes::ops::not_found))
        })
        .listen(listener)?
        // A request head must arrive within the request timeout (a slow body is bounded by the
        // request deadline, `edge::deadline`), and a closing client gets one second.
        .client_request_timeout(settings.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1));
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Application { port, server: server.run(), background })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The background tasks, for a test that kills this instance mid-work: aborting them
    /// drops whatever they had in flight, as a crash of the process would.
    pub fn background_tasks(&self) -> Vec<tokio::task::AbortHandle> {
        self.background.clone()
    }

    /// Serves until SIGTERM or Ctrl-C: stops accepting, lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
