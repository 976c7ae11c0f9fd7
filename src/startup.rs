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
    cache::CartCache, checkout::Checkouts, config::Settings, events::Hub, metrics::Metrics, middleware, routes,
    state::AppState, tasks, webhooks::seal::Sealer,
};

pub struct Application {
    port: u16,
    server: Server,
    background: Vec<tokio::task::AbortHandle>,
}

/// A pool that fails fast when the database is gone, so requests answer 503 quickly.
fn pool_options(settings: &Settings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.pool_size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
}

/// Every session of the pool waits at most 10 s for a row lock, then gives up with a
/// retryable error (503): no request can hang behind a lock forever, and the idempotency
/// wait of a duplicate checkout needs no statement of its own.
fn connect_options(url: &str) -> Result<PgConnectOptions, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("invalid DATABASE_URL: {e}"))?;
    Ok(options.options([("lock_timeout", "10s")]))
}

/// Connects now: used at start-up, where an unreachable database should stop the start.
pub async fn connect(settings: &Settings, url: &str) -> Result<PgPool, String> {
    pool_options(settings)
        .connect_with(connect_options(url)?)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

/// Connects on first use (tests, tools).
pub fn connect_lazy(settings: &Settings, url: &str) -> Result<PgPool, String> {
    Ok(pool_options(settings).connect_lazy_with(connect_options(url)?))
}

/// SIGTERM or Ctrl-C, the signals actix stops on.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and starts the background tasks.
    pub fn build(settings: Settings, pool: PgPool, admin_token: SecretString) -> std::io::Result<Application> {
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(Metrics::default());
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            checkouts: Checkouts::start(
                pool.clone(),
                settings.clone(),
                settings.checkout_workers,
                settings.checkout_batch,
            ),
            pool: pool.clone(),
            carts: CartCache::new(settings.cart_cache_capacity, settings.cart_cache_idle, metrics.clone()),
            settings: settings.clone(),
            admin_token: admin_token.clone(),
            metrics: metrics.clone(),
            events: Hub::start(pool.clone(), settings.stream_limit, metrics.clone().into_inner()),
            // Every replica must derive the same key; both sources are shared configuration.
            views: Default::default(),
            sealer: Sealer::new(settings.secret_key.as_ref().unwrap_or(&admin_token).expose_secret()),
        });
        // Streams never finish on their own: end them when a stop is asked for, so the
        // graceful shutdown is not held up by them for its whole timeout.
        let hub = state.events.clone();
        tokio::spawn(async move {
            stop_requested().await;
            hub.shutdown();
        });
        let background = tasks::spawn_all(state.clone().into_inner());

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .wrap(from_fn(middleware::observe))
                .configure(routes::configure)
                .default_service(web::to(routes::ops::not_found))
        })
        .listen(listener)?
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
