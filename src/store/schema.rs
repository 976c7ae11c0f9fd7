//! The schema's own history, as refinery records it. Read at run time, not checked at compile
//! time: the table exists only once a migration has run.

use sqlx::PgPool;

/// The applied migrations (version, name, checksum), oldest first; none on an empty database.
pub async fn history(pool: &PgPool) -> Result<Vec<(i32, Option<String>, Option<String>)>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('refinery_schema_history')::text").fetch_one(pool).await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, name, checksum FROM refinery_schema_history ORDER BY version").fetch_all(pool).await
}
