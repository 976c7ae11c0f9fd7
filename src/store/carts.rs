//! Carts and their lines. A cart's `version` is bumped by every change, in the change's
//! transaction, and its row lock serialises concurrent changes of one cart.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Currency, Money, TokenHash, MAX_CART_LINES, MAX_LINE_QUANTITY};

#[derive(Debug, Clone)]
pub struct CartLine {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub currency: Currency,
}

/// A cart assembled with the catalog's current names and prices, as of `catalog_revision`.
#[derive(Debug, Clone)]
pub struct CartView {
    pub id: Uuid,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub catalog_revision: i64,
    pub lines: Vec<CartLine>,
}

impl CartView {
    pub fn quantity_of(&self, sku: &str) -> Option<i32> {
        self.lines.iter().find(|l| l.sku == sku).map(|l| l.quantity)
    }

    /// Sets a line as the database now has it: updated in place, or appended (new lines come last).
    pub fn set_line(&mut self, sku: &str, quantity: i32, product: &LineProduct) {
        match self.lines.iter_mut().find(|l| l.sku == sku) {
            Some(line) => line.quantity = quantity,
            None => self.lines.push(CartLine {
                sku: sku.to_owned(),
                name: product.name.clone(),
                quantity,
                unit_price: product.unit_price,
                currency: product.currency.clone(),
            }),
        }
    }

    pub fn remove_line(&mut self, sku: &str) {
        self.lines.retain(|l| l.sku != sku);
    }

    pub fn to_json(&self, currency: &Currency) -> Value {
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku,
                    "name": l.name,
                    "quantity": l.quantity,
                    "unit_price": Money::new(l.unit_price, l.currency.clone()),
                    "line_total": Money::new(l.unit_price * i64::from(l.quantity), l.currency.clone()),
                })
            })
            .collect();
        let subtotal: i64 = self.lines.iter().map(|l| l.unit_price * i64::from(l.quantity)).sum();
        let item_count: i64 = self.lines.iter().map(|l| i64::from(l.quantity)).sum();
        json!({
            "id": self.id,
            "version": self.version,
            "lines": lines,
            "item_count": item_count,
            "subtotal": Money::new(subtotal, currency.clone()),
            "updated_at": super::timestamp(&self.updated_at),
        })
    }
}

/// A cart's rows as the LEFT JOINs return them: an empty cart is one row of NULL lines.
type LineRow = (Option<String>, Option<String>, Option<i32>, Option<i64>, Option<Currency>);

fn assemble(
    cart_id: Uuid,
    version: i64,
    updated_at: DateTime<Utc>,
    catalog_revision: i64,
    rows: impl Iterator<Item = LineRow>,
) -> CartView {
    let lines = rows
        .filter_map(|row| match row {
            (Some(sku), Some(name), Some(quantity), Some(unit_price), Some(currency)) => {
                Some(CartLine { sku, name, quantity, unit_price, currency })
            }
            _ => None,
        })
        .collect();
    CartView { id: cart_id, version, updated_at, catalog_revision, lines }
}

/// Reads the whole cart in one statement, so version, lines and prices are one snapshot. A
/// cart a session names but has not written yet (see `create_for`) is empty at version 0,
/// last updated when its first session began; `None` when neither cart nor session exists.
pub async fn load(conn: &mut PgConnection, cart_id: Uuid) -> Result<Option<CartView>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT coalesce(c.version, 0) AS "version!",
                  coalesce(c.updated_at, (SELECT min(s.created_at) FROM sessions s WHERE s.cart_id = k.id)) AS updated_at,
                  r.revision,
                  l.sku AS "sku?", l.name AS "name?", l.quantity AS "quantity?",
                  l.price_amount AS "price_amount?", l.price_currency AS "price_currency?: Currency"
           FROM (SELECT $1::uuid AS id) k
           CROSS JOIN catalog_revision r
           LEFT JOIN carts c ON c.id = k.id
           LEFT JOIN cart_contents l ON l.cart_id = c.id
           ORDER BY l.position"#,
        cart_id
    )
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let Some(updated_at) = first.updated_at else {
        return Ok(None);
    };
    let (version, revision) = (first.version, first.revision);
    let lines = rows.into_iter().map(|r| (r.sku, r.name, r.quantity, r.price_amount, r.price_currency));
    let view = assemble(cart_id, version, updated_at, revision, lines);
    Ok(Some(view))
}

/// Creates the cart of the session a token names, if it has none yet: a cart's first change
/// calls this when `begin_change` found no cart, then begins again. The session is locked
/// (key share) until the change commits, so a revoke, attach or purge of the session waits
/// for it and then sees the new row; one that came first has already taken the session away
/// (or moved it to its customer's cart, which exists), and nothing is inserted.
pub async fn create_for(tx: &mut PgConnection, token: &TokenHash) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO carts (id)
           SELECT cart_id FROM sessions WHERE token_hash = $1 AND expires_at > now() FOR KEY SHARE
           ON CONFLICT (id) DO NOTHING"#,
        &token.0
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The cart of a session, locked and bumped for one change.
#[derive(Debug, Clone)]
pub struct LockedCart {
    pub session_id: Uuid,
    pub cart_id: Uuid,
    /// The version this change makes; the cart had `version - 1` before it.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub session_expires_at: DateTime<Utc>,
    pub catalog_revision: i64,
}

/// Authenticates the session and locks and bumps its cart, in one statement of the caller's
/// transaction; `None` for an unknown, expired or revoked session, or one whose cart has no
/// row yet (`create_for`). Every change of a cart starts here, so the cart row lock
/// serialises concurrent changes of one cart.
pub async fn begin_change(tx: &mut PgConnection, token: &TokenHash) -> Result<Option<LockedCart>, sqlx::Error> {
    sqlx::query_as!(
        LockedCart,
        r#"UPDATE carts c SET version = c.version + 1, updated_at = now()
           FROM sessions s
           WHERE s.token_hash = $1 AND s.expires_at > now() AND c.id = s.cart_id
           RETURNING s.id AS session_id, c.id AS cart_id, c.version, c.updated_at,
                     s.expires_at AS session_expires_at,
                     (SELECT revision FROM catalog_revision) AS "catalog_revision!""#,
        &token.0
    )
    .fetch_optional(tx)
    .await
}

/// `begin_change` and `load_for_change` in one statement (one round trip fewer on every cart
/// change). The statement reads the cart as of its snapshot, taken before it locked the cart:
/// when the cart's version in that snapshot is the one the lock found (`version - 1`), nobody
/// changed the cart in between (every change bumps it) and the lines read are current; when
/// it is not, a concurrent change was waited for, and the snapshot is `None`: read it again
/// with `load_for_change`.
pub async fn begin_change_and_load(
    tx: &mut PgConnection,
    token: &TokenHash,
    sku: &str,
) -> Result<Option<(LockedCart, Option<CartRead>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH locked AS (
               UPDATE carts c SET version = c.version + 1, updated_at = now()
               FROM sessions s
               WHERE s.token_hash = $1 AND s.expires_at > now() AND c.id = s.cart_id
               RETURNING s.id AS session_id, c.id AS cart_id, c.version, c.updated_at, s.expires_at AS session_expires_at
           )
           SELECT k.session_id AS "session_id!", k.cart_id AS "cart_id!", k.version AS "version!",
                  k.updated_at AS "updated_at!", k.session_expires_at AS "session_expires_at!",
                  seen.version AS seen_version, r.revision,
                  l.sku AS "sku?", l.name AS "name?", l.quantity AS "quantity?",
                  l.price_amount AS "price_amount?", l.price_currency AS "price_currency?: Currency",
                  t.name AS "target_name?", t.price_amount AS "target_price?",
                  t.price_currency AS "target_currency?: Currency", t.available AS "target_available?"
           FROM locked k
           JOIN carts seen ON seen.id = k.cart_id
           CROSS JOIN catalog_revision r
           LEFT JOIN product_offers t ON t.sku = $2
           LEFT JOIN cart_contents l ON l.cart_id = k.cart_id
           ORDER BY l.position"#,
        &token.0,
        sku
    )
    .fetch_all(tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let locked = LockedCart {
        session_id: first.session_id,
        cart_id: first.cart_id,
        version: first.version,
        updated_at: first.updated_at,
        session_expires_at: first.session_expires_at,
        catalog_revision: first.revision,
    };
    if first.seen_version != locked.version - 1 {
        return Ok(Some((locked, None)));
    }
    let product =
        LineProduct::found(&first.target_name, first.target_price, &first.target_currency, first.target_available);
    let lines = rows.into_iter().map(|r| (r.sku, r.name, r.quantity, r.price_amount, r.price_currency));
    let view = assemble(locked.cart_id, locked.version, locked.updated_at, locked.catalog_revision, lines);
    Ok(Some((locked, Some((view, product)))))
}

/// A cart as a change reads it: the cart, and the product to change (`None`: no such product).
pub type CartRead = (CartView, Option<LineProduct>);

/// A product as a cart line needs it, with what is available now.
#[derive(Debug, Clone)]
pub struct LineProduct {
    pub name: String,
    pub unit_price: i64,
    pub currency: Currency,
    pub available: i64,
}

impl LineProduct {
    /// The product from the columns of a LEFT JOIN: `None` when the join found no product.
    fn found(
        name: &Option<String>,
        unit_price: Option<i64>,
        currency: &Option<Currency>,
        available: Option<i64>,
    ) -> Option<LineProduct> {
        match (name, unit_price, currency, available) {
            (Some(name), Some(unit_price), Some(currency), Some(available)) => {
                Some(LineProduct { name: name.clone(), unit_price, currency: currency.clone(), available })
            }
            _ => None,
        }
    }
}

/// The locked cart (one snapshot after the lock, so it is current) and the product `sku`,
/// if it exists, in one statement.
pub async fn load_for_change(tx: &mut PgConnection, cart_id: Uuid, sku: &str) -> Result<Option<CartRead>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT c.version, c.updated_at, r.revision,
                  l.sku AS "sku?", l.name AS "name?", l.quantity AS "quantity?",
                  l.price_amount AS "price_amount?", l.price_currency AS "price_currency?: Currency",
                  t.name AS "target_name?", t.price_amount AS "target_price?",
                  t.price_currency AS "target_currency?: Currency", t.available AS "target_available?"
           FROM carts c
           CROSS JOIN catalog_revision r
           LEFT JOIN product_offers t ON t.sku = $2
           LEFT JOIN cart_contents l ON l.cart_id = c.id
           WHERE c.id = $1
           ORDER BY l.position"#,
        cart_id,
        sku
    )
    .fetch_all(tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let product =
        LineProduct::found(&first.target_name, first.target_price, &first.target_currency, first.target_available);
    let (version, updated_at, revision) = (first.version, first.updated_at, first.revision);
    let lines = rows.into_iter().map(|r| (r.sku, r.name, r.quantity, r.price_amount, r.price_currency));
    let view = assemble(cart_id, version, updated_at, revision, lines);
    Ok(Some((view, product)))
}

pub async fn set_line(tx: &mut PgConnection, cart_id: Uuid, sku: &str, quantity: i32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO cart_lines (cart_id, sku, quantity) VALUES ($1, $2, $3)
           ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity"#,
        cart_id,
        sku,
        quantity
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn remove_line(tx: &mut PgConnection, cart_id: Uuid, sku: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2", cart_id, sku).execute(tx).await?;
    Ok(())
}

pub async fn clear(tx: &mut PgConnection, cart_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM cart_lines WHERE cart_id = $1", cart_id).execute(tx).await?;
    Ok(())
}

/// The customer's cart, created on first use, locked.
pub async fn lock_customer_cart(tx: &mut PgConnection, customer_id: &str) -> Result<Uuid, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO carts (id, customer_id) VALUES ($1, $2) ON CONFLICT (customer_id) DO NOTHING",
        Uuid::new_v4(),
        customer_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query_scalar!("SELECT id FROM carts WHERE customer_id = $1 FOR UPDATE", customer_id).fetch_one(tx).await
}

/// Locks a cart for a change made outside `begin_change` (the attach merge).
pub async fn lock(tx: &mut PgConnection, cart_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT id FROM carts WHERE id = $1 FOR UPDATE", cart_id).fetch_optional(tx).await?;
    Ok(())
}

/// Merges the guest cart's lines into the customer's cart. Quantities of a SKU in
/// both are summed and capped at 999; guest lines that would make more than 100 lines are
/// dropped (the customer's own lines come first). Bumps the customer cart's version once.
pub async fn merge_guest_cart(tx: &mut PgConnection, guest: Uuid, into: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH guest AS (
               SELECT sku, quantity, position FROM cart_lines WHERE cart_id = $1
           ), room AS (
               SELECT $3 - count(*) AS free FROM cart_lines WHERE cart_id = $2
           ), fresh AS (
               SELECT g.sku, g.quantity FROM guest g
               WHERE NOT EXISTS (SELECT 1 FROM cart_lines l WHERE l.cart_id = $2 AND l.sku = g.sku)
               ORDER BY g.position
               LIMIT (SELECT greatest(free, 0) FROM room)
           ), summed AS (
               UPDATE cart_lines l SET quantity = least(l.quantity + g.quantity, $4)
               FROM guest g WHERE l.cart_id = $2 AND l.sku = g.sku
           )
           INSERT INTO cart_lines (cart_id, sku, quantity) SELECT $2, sku, quantity FROM fresh"#,
        guest,
        into,
        MAX_CART_LINES,
        MAX_LINE_QUANTITY as i32
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE carts SET version = version + 1, updated_at = now() WHERE id = $1", into).execute(tx).await?;
    Ok(())
}

/// Deletes a guest cart no session uses any more (its lines go with it).
pub async fn delete_guest(tx: &mut PgConnection, cart_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM carts WHERE id = $1 AND customer_id IS NULL", cart_id).execute(tx).await?;
    Ok(())
}
