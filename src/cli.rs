//! The command line: `serve` (the default), `migrate [--status]`, `check-invariants`.

use std::process::ExitCode;

use secrecy::ExposeSecret;

use crate::{
    config::{Settings, VARIABLES},
    embedded_pg::{write_private, EmbeddedPg},
    invariants, migrate,
    startup::{connect, Application},
    telemetry,
};

fn usage() -> String {
    let mut out = String::from(
        "stockcart: shopping carts and real-time inventory over HTTP\n\n\
         USAGE:\n  stockcart [serve] [--migrate]   serve the API (the default command)\n\
         \x20 stockcart migrate [--status]     apply pending migrations, or only list them\n\
         \x20 stockcart check-invariants       verify stock, orders and ledger agree (exit 1 if not)\n\
         \x20 stockcart loadgen [--help]       simulate shoppers against running replicas, then verify\n\
         \x20 stockcart watch MODE [--help]    event stream and webhook consumers that measure lag (benchmarks)\n\n\
         OPTIONS:\n  --migrate   with serve: apply pending migrations before serving\n\
         \x20 --status    with migrate: list applied, pending and divergent migrations; change nothing\n\
         \x20 -h, --help  print this help\n\nENVIRONMENT:\n",
    );
    for (name, default, meaning) in VARIABLES {
        out.push_str(&format!("  {name:<28} {meaning} [default: {default}]\n"));
    }
    out
}

enum Command {
    Serve { migrate: bool },
    Migrate { status: bool },
    CheckInvariants,
}

fn parse(args: &[String]) -> Result<Option<Command>, String> {
    if args.iter().any(|a| a == "-h" || a == "--help" || a == "help") {
        return Ok(None);
    }
    let (command, flags) = match args.first().map(String::as_str) {
        None => ("serve", args),
        Some(flag) if flag.starts_with('-') => ("serve", args),
        Some(cmd) => (cmd, &args[1..]),
    };
    let allowed: &[&str] = match command {
        "serve" => &["--migrate"],
        "migrate" => &["--status"],
        "check-invariants" => &[],
        other => return Err(format!("unknown command {other:?}")),
    };
    if let Some(bad) = flags.iter().find(|f| !allowed.contains(&f.as_str())) {
        return Err(format!("unknown option {bad:?} for {command}"));
    }
    let has = |f: &str| flags.iter().any(|a| a == f);
    Ok(Some(match command {
        "serve" => Command::Serve { migrate: has("--migrate") },
        "migrate" => Command::Migrate { status: has("--status") },
        _ => Command::CheckInvariants,
    }))
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("loadgen") {
        return crate::loadgen::main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("watch") {
        return match crate::loadgen::watch::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stockcart watch: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let command = match parse(&args) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stockcart: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stockcart: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _logs = telemetry::init(&settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let result = runtime.block_on(run(command, settings));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stockcart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The database to use: `DATABASE_URL`, or the private cluster (started here, stopped by the caller).
fn database(settings: &Settings) -> Result<(String, Option<EmbeddedPg>), String> {
    match &settings.database_url {
        Some(url) => Ok((url.expose_secret().to_owned(), None)),
        None => {
            let pg = EmbeddedPg::start(&settings.data_dir.join("pg"))?;
            Ok((pg.url("postgres"), Some(pg)))
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<ExitCode, String> {
    let (url, embedded) = database(&settings)?;
    let result = match command {
        Command::Serve { migrate } => serve(settings, &url, migrate || embedded.is_some(), embedded.is_some()).await,
        Command::Migrate { status } => migrate_command(&settings, &url, status).await,
        Command::CheckInvariants => check_invariants(&settings, &url).await,
    };
    if let Some(pg) = embedded {
        pg.stop();
    }
    result
}

async fn migrate_command(settings: &Settings, url: &str, status_only: bool) -> Result<ExitCode, String> {
    if !status_only {
        let applied = migrate::run(url).await?;
        println!("applied {} migration(s)", applied.len());
    }
    let pool = connect(settings, url).await?;
    let status = migrate::status(&pool).await.map_err(|e| format!("cannot read the migration history: {e}"))?;
    print!("{}", status.report());
    Ok(if status.is_current() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

async fn check_invariants(settings: &Settings, url: &str) -> Result<ExitCode, String> {
    let pool = connect(settings, url).await?;
    let report = invariants::check(&pool).await.map_err(|e| format!("cannot check: {e}"))?;
    for v in &report.violations {
        println!("{v}");
    }
    println!("{}", if report.ok() { "invariants hold" } else { "INVARIANTS VIOLATED" });
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn serve(settings: Settings, url: &str, apply_migrations: bool, embedded: bool) -> Result<ExitCode, String> {
    let admin_token = match (&settings.admin_token, embedded) {
        (Some(token), _) => token.clone(),
        (None, true) => generated_admin_token(&settings)?.into(),
        (None, false) => return Err("STOCKCART_ADMIN_TOKEN must be set when DATABASE_URL is set".into()),
    };
    if apply_migrations {
        for m in migrate::run(url).await? {
            tracing::info!(migration = %m, "applied");
        }
    }
    let pool = connect(&settings, url).await?;
    let status = migrate::status(&pool).await.map_err(|e| format!("cannot read the migration history: {e}"))?;
    if !status.is_current() {
        let names = |list: &[migrate::MigrationRef]| list.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
        let mut msg = String::from("refusing to serve: the database schema is not current.");
        if !status.pending.is_empty() {
            msg.push_str(&format!(" Pending: {}.", names(&status.pending)));
        }
        if !status.divergent.is_empty() {
            msg.push_str(&format!(" Divergent: {}.", names(&status.divergent)));
        }
        msg.push_str(" Run `stockcart migrate` (or start with `serve --migrate`).");
        return Err(msg);
    }
    let app = Application::build(settings.clone(), pool.clone(), admin_token.clone())
        .map_err(|e| format!("cannot listen on {}: {e}", settings.bind))?;
    let base = format!("http://{}:{}", settings.bind.ip(), app.port());
    if embedded {
        println!("stockcart serving on {base} (private PostgreSQL: {url})");
        // Printed on purpose: the embedded default generated it, and this is how its user learns it.
        println!("admin token: {}", admin_token.expose_secret());
    } else {
        println!("stockcart serving on {base}");
    }
    tracing::info!(%base, "serving");
    app.run_until_stopped().await.map_err(|e| format!("server failed: {e}"))?;
    tracing::info!("stopped accepting; closing the pool");
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The embedded mode's admin token: generated once, kept beside the data.
fn generated_admin_token(settings: &Settings) -> Result<String, String> {
    let path = settings.data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim().to_owned();
        if token.len() >= 16 {
            return Ok(token);
        }
    }
    let token = format!("adm_{}", &crate::domain::SessionToken::generate().as_str()[3..]);
    write_private(&path, &token).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(token)
}
