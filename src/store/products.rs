//! The catalog. Every product change also bumps `catalog_revision`, in the same transaction,
//! which is what keeps cached carts' names and prices fresh on every replica.

use serde_json::{json, Value};
use sqlx::PgConnection;

use super::stock::{self, StockStatus};
use crate::domain::{Currency, Money, Sku};

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_amount: i64,
    pub price_currency: Currency,
    pub low_stock_threshold: i64,
    pub available: i64,
}

impl Product {
    pub fn to_json(&self) -> Value {
        json!({
            "sku": self.sku,
            "name": self.name,
            "price": Money::new(self.price_amount, self.price_currency.clone()),
            "available": self.available,
            "low_stock_threshold": self.low_stock_threshold,
            "status": StockStatus::of(self.available, self.low_stock_threshold).as_str(),
        })
    }
}

pub struct ProductInput<'a> {
    pub sku: &'a Sku,
    pub name: &'a str,
    pub price: &'a Money,
    pub low_stock_threshold: Option<i64>,
}

/// Creates (with a stock level of zero) or updates a product; `true` when created.
/// Name and price changes never touch the stock level, its version or its ledger; a threshold
/// change goes through `stock::set_threshold`, which writes the status event it may cause.
pub async fn upsert(tx: &mut PgConnection, input: ProductInput<'_>) -> Result<(Product, bool), sqlx::Error> {
    let created = sqlx::query_scalar!(
        r#"INSERT INTO products (sku, name, price_amount, price_currency)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (sku) DO UPDATE
           SET name = EXCLUDED.name,
               price_amount = EXCLUDED.price_amount,
               price_currency = EXCLUDED.price_currency,
               updated_at = now()
           RETURNING (xmax = 0) AS "created!""#,
        input.sku.as_str(),
        input.name,
        input.price.amount,
        input.price.currency.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    if created {
        // A new SKU starts `out` without an event: nothing crossed, it began there.
        sqlx::query!(
            "INSERT INTO stock_levels (sku, on_hand, low_stock_threshold) VALUES ($1, 0, COALESCE($2::int8, 0))",
            input.sku.as_str(),
            input.low_stock_threshold
        )
        .execute(&mut *tx)
        .await?;
    } else if let Some(threshold) = input.low_stock_threshold {
        stock::set_threshold(tx, input.sku.as_str(), threshold).await?;
    }
    sqlx::query!("UPDATE catalog_revision SET revision = revision + 1").execute(&mut *tx).await?;
    let product = find(tx, input.sku.as_str()).await?.expect("the product was just written");
    Ok((product, created))
}

pub async fn find(conn: &mut PgConnection, sku: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as!(
        Product,
        r#"SELECT p.sku, p.name, p.price_amount, p.price_currency AS "price_currency: Currency", s.low_stock_threshold,
                  s.on_hand - s.reserved AS "available!"
           FROM products p JOIN stock_levels s ON s.sku = p.sku
           WHERE p.sku = $1"#,
        sku
    )
    .fetch_optional(conn)
    .await
}

/// Ordered by SKU, after the SKU `after`.
pub async fn list(conn: &mut PgConnection, after: Option<&str>, limit: i64) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as!(
        Product,
        r#"SELECT p.sku, p.name, p.price_amount, p.price_currency AS "price_currency: Currency", s.low_stock_threshold,
                  s.on_hand - s.reserved AS "available!"
           FROM products p JOIN stock_levels s ON s.sku = p.sku
           WHERE $1::text IS NULL OR p.sku > $1
           ORDER BY p.sku
           LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}
