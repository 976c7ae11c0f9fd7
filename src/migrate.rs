//! Schema migrations: plain SQL files in `migrations/`, named `V<n>__<name>.sql` so that
//! DBAs can apply the same files with `refinery_cli`. They are embedded into the binary.
//!
//! `migrate` runs refinery under a PostgreSQL advisory lock, so replicas that start at once
//! apply each migration exactly once (on refinery's own client, as refinery requires). `status`
//! only reads the history table (`store/schema.rs`), so `serve` can check the schema as a role
//! with data rights only.

use sqlx::PgPool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Key of the advisory lock held while migrating ("stockcar" in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_6f63_6b63_6172;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRef {
    pub version: i32,
    pub name: String,
}

impl std::fmt::Display for MigrationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "V{}__{}", self.version, self.name)
    }
}

#[derive(Debug, Default)]
pub struct MigrationStatus {
    pub applied: Vec<MigrationRef>,
    pub pending: Vec<MigrationRef>,
    /// Applied with another name or checksum than the file this binary carries, or applied
    /// but unknown to this binary (a newer binary migrated the database).
    pub divergent: Vec<MigrationRef>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.divergent.is_empty()
    }

    pub fn report(&self) -> String {
        let mut out = String::new();
        for (label, list) in [("applied", &self.applied), ("pending", &self.pending), ("divergent", &self.divergent)] {
            for m in list {
                out.push_str(&format!("{label:<10} {m}\n"));
            }
        }
        if out.is_empty() {
            out.push_str("no migrations\n");
        }
        out
    }
}

/// Compares the database's history with the embedded migrations, reading only.
pub async fn status(pool: &PgPool) -> Result<MigrationStatus, sqlx::Error> {
    let history = crate::store::schema::history(pool).await?;
    let runner = embedded::migrations::runner();
    let local = runner.get_migrations();
    let mut status = MigrationStatus::default();
    for (version, name, checksum) in &history {
        let reference = MigrationRef { version: *version, name: name.clone().unwrap_or_default() };
        match local.iter().find(|m| m.version() == *version) {
            Some(m) if m.name() == reference.name && checksum.as_deref() == Some(&m.checksum().to_string()) => {
                status.applied.push(reference)
            }
            _ => status.divergent.push(reference),
        }
    }
    for m in local {
        if !history.iter().any(|(v, _, _)| *v == m.version()) {
            status.pending.push(MigrationRef { version: m.version(), name: m.name().to_owned() });
        }
    }
    // In the order they would apply (refinery lists them by file name: V10 before V2).
    status.pending.sort_by_key(|m| m.version);
    Ok(status)
}

/// Applies pending migrations under the advisory lock; returns the ones this call applied.
pub async fn run(database_url: &str) -> Result<Vec<MigrationRef>, String> {
    let (mut client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| format!("cannot take the migration lock: {e}"))?;
    let result =
        embedded::migrations::runner().set_abort_divergent(true).set_abort_missing(true).run_async(&mut client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    drop(client);
    let _ = driver.await;
    let report = result.map_err(|e| format!("migration failed: {e}"))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| MigrationRef { version: m.version(), name: m.name().to_owned() })
        .collect())
}

/// The newest migration this binary carries.
pub fn latest_version() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version()).max().unwrap_or(0)
}

/// `V<n>__<name>.sql` with a name of letters, digits and underscores.
pub fn is_refinery_name(file: &str) -> bool {
    let Some(rest) = file.strip_prefix('V').and_then(|r| r.strip_suffix(".sql")) else {
        return false;
    };
    let Some((version, name)) = rest.split_once("__") else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    /// refinery silently ignores a file that does not match its naming scheme: catch that here.
    #[test]
    fn every_migration_file_is_named_for_refinery() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                super::is_refinery_name(&name),
                "refinery would silently ignore migrations/{name}: name it V<n>__<name>.sql"
            );
            files += 1;
        }
        assert_eq!(files, super::embedded::migrations::runner().get_migrations().len());
    }

    #[test]
    fn the_naming_rule_rejects_common_mistakes() {
        use super::is_refinery_name;
        assert!(is_refinery_name("V1__init.sql"));
        assert!(is_refinery_name("V12__add_orders_index.sql"));
        for bad in [
            "V1_init.sql",
            "v1__init.sql",
            "V1__init.SQL",
            "1__init.sql",
            "V1__init.sql.bak",
            "V1__add-index.sql",
            "Vx__init.sql",
        ] {
            assert!(!is_refinery_name(bad), "{bad}");
        }
    }
}
