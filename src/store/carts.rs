//! Carts and their lines. A cart's `version` is bumped by every change, in the change's
//! transaction, under the cart's row lock: a change reads its cart either locked, or unlocked
//! and then writes only if the version is still the one it read. Either way concurrent
//! changes of one cart are made one after another, each on the cart the previous one left.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{value::RawValue, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Currency, MAX_CART_LINES, MAX_LINE_QUANTITY};

#[derive(Debug, Clone)]
pub struct CartLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: i64,
    /// The line as the API answers it, rendered when the line is made. A line is never changed
    /// in place: every later copy of its cart shares it (`CartView::lines` holds `Arc`s) until a
    /// change replaces it. So a change renders and copies only the line it sets; rendering and
    /// cloning every line of the cart on every change was the largest part of a replica's work
    /// in add to cart after the round trips (JSON string escaping, and the allocations of each
    /// line's strings: BENCHMARKS.md). The line's name and currency are kept only here: a
    /// replica caches every line of thousands of carts, and keeping them apart as well took a
    /// replica past 100 MiB in the benchmark (BENCHMARKS.md, fourteenth session).
    json: Box<RawValue>,
}

impl CartLine {
    fn new(sku: String, name: &str, quantity: i32, unit_price: i64, currency: &Currency) -> CartLine {
        let body = LineBody {
            line_total: MoneyRef { amount: unit_price * i64::from(quantity), currency },
            name,
            quantity,
            sku: &sku,
            unit_price: MoneyRef { amount: unit_price, currency },
        };
        // Plain strings and numbers: serialising them cannot fail.
        let json = serde_json::value::to_raw_value(&body).expect("a cart line serialises");
        CartLine { sku, quantity, unit_price, json }
    }
}

/// A cart assembled with the catalog's current names and prices, as of `catalog_revision`.
#[derive(Debug, Clone)]
pub struct CartView {
    pub id: Uuid,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub catalog_revision: i64,
    /// Shared with the other copies of this cart, each line until a change replaces it.
    pub lines: Vec<Arc<CartLine>>,
    /// The cart's history (V17) at this version, when a change made here wrote it: with it, the
    /// next change of this copy can be decided without reading the cart (`cart_changes`).
    pub recent: Option<Arc<Recent>>,
}

impl CartView {
    pub fn quantity_of(&self, sku: &str) -> Option<i32> {
        self.lines.iter().find(|l| l.sku == sku).map(|l| l.quantity)
    }

    /// Sets a line as the database now has it, with the product as read with the cart (at
    /// its catalog revision): in its place, or appended (new lines come last).
    pub fn set_line(&mut self, sku: &str, quantity: i32, product: &LineProduct) {
        self.put_line(CartLine::new(sku.to_owned(), &product.name, quantity, product.unit_price, &product.currency));
    }

    /// The one place a line is set: where the cart has the line, else last, where the
    /// database's `position` puts a line inserted now.
    fn put_line(&mut self, new: CartLine) {
        match self.lines.iter_mut().find(|l| l.sku == new.sku) {
            Some(line) => *line = Arc::new(new),
            None => self.lines.push(Arc::new(new)),
        }
    }

    pub fn remove_line(&mut self, sku: &str) {
        self.lines.retain(|l| l.sku != sku);
    }

    /// This copy brought up to `version` with the line writes that made the versions it
    /// lacks, oldest first, as `read_for_change` reads them from the cart's history: a quantity of
    /// 0 removes the line, any other sets it. A line set always has its product (cart lines
    /// reference products); were one missing, the copy is given up (`None`) and the caller
    /// reads the cart under its lock rather than answer a cart no read would show.
    fn caught_up(mut self, version: i64, updated_at: DateTime<Utc>, writes: Vec<LineRow>) -> Option<CartView> {
        for write in writes {
            match write {
                (None, ..) => {}
                (Some(sku), _, Some(0), ..) => self.remove_line(&sku),
                (Some(sku), Some(name), Some(quantity), Some(unit_price), Some(currency)) => {
                    self.put_line(CartLine::new(sku, &name, quantity, unit_price, &currency))
                }
                (Some(_), ..) => return None,
            }
        }
        self.version = version;
        self.updated_at = updated_at;
        self.recent = None;
        Some(self)
    }

    /// The cart as the API answers it.
    pub fn to_json(&self, currency: &Currency) -> Value {
        serde_json::from_slice(&self.to_bytes(currency)).unwrap_or(Value::Null)
    }

    /// The answer's bytes, serialised straight from the cart (no JSON tree in between), each
    /// line rendered once for all the copies that share it (`CartLine::json`).
    pub fn to_bytes(&self, currency: &Currency) -> Vec<u8> {
        let body = CartBody {
            id: self.id,
            item_count: self.lines.iter().map(|l| i64::from(l.quantity)).sum(),
            lines: self.lines.iter().map(|l| &*l.json).collect(),
            subtotal: MoneyRef {
                amount: self.lines.iter().map(|l| l.unit_price * i64::from(l.quantity)).sum(),
                currency,
            },
            updated_at: super::timestamp(&self.updated_at),
            version: self.version,
        };
        // Sized for the whole answer at once: grown from empty, it was copied about as many
        // times as it doubled.
        let mut bytes = Vec::with_capacity(256 + body.lines.iter().map(|l| l.get().len() + 1).sum::<usize>());
        // Plain strings and numbers: serialising them cannot fail.
        serde_json::to_writer(&mut bytes, &body).expect("a cart serialises");
        bytes
    }
}

// The answer's shape (the contract's cart). Fields in alphabetical order, the order the JSON
// tree this replaced wrote them in, so the bytes are as before.
#[derive(Serialize)]
struct CartBody<'a> {
    id: Uuid,
    item_count: i64,
    lines: Vec<&'a RawValue>,
    subtotal: MoneyRef<'a>,
    updated_at: String,
    version: i64,
}

#[derive(Serialize)]
struct LineBody<'a> {
    line_total: MoneyRef<'a>,
    name: &'a str,
    quantity: i32,
    sku: &'a str,
    unit_price: MoneyRef<'a>,
}

/// `Money` without owning its currency.
#[derive(Serialize)]
struct MoneyRef<'a> {
    amount: i64,
    currency: &'a Currency,
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
                Some(Arc::new(CartLine::new(sku, &name, quantity, unit_price, &currency)))
            }
            _ => None,
        })
        .collect();
    CartView { id: cart_id, version, updated_at, catalog_revision, lines, recent: None }
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

/// Creates the carts of the sessions these tokens name, where they have none yet: a cart's
/// first change calls this when `read_for_change` found no cart, then locks again. Each session is
/// locked (key share) until the change commits, so a revoke, attach or purge of it waits for
/// the change and then sees the new row; one that came first has already taken the session
/// away (or moved it to its customer's cart, which exists), and nothing is inserted.
pub async fn create_for(tx: &mut PgConnection, tokens: &[Vec<u8>]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO carts (id)
           SELECT cart_id FROM sessions WHERE token_hash = ANY($1) AND expires_at > now()
           ORDER BY cart_id
           FOR KEY SHARE
           ON CONFLICT (id) DO NOTHING"#,
        tokens
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The cart of one request of `read_for_change`, as its change finds it.
#[derive(Debug, Clone)]
pub struct ChangingCart {
    pub session_id: Uuid,
    pub session_expires_at: DateTime<Utc>,
    pub cart_id: Uuid,
    /// The cart's version before the change: under the lock (`Reading::Locked`), or as read
    /// (`Reading::Unlocked`), which the write then requires it still to be.
    pub version: i64,
    /// The cart and the product to change; `None` when the statement's snapshot is older than
    /// the lock (read it with `load_for_change`). Never `None` for `Reading::Unlocked`.
    pub read: Option<CartRead>,
    /// Where `read`'s cart came from.
    pub source: Source,
}

/// Where a cart's contents came from, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The caller's copy was current: no line read.
    Cached,
    /// The caller's copy, brought up to date with the line writes it lacked.
    CaughtUp,
    /// Every line read.
    Whole,
}

/// How `read_for_change` reads the carts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Locked (`FOR UPDATE`) in the caller's transaction until it commits: the change cannot
    /// meet another.
    Locked,
    /// Read as of one snapshot, with no lock and no transaction: `write_changes` then makes
    /// only the changes whose cart is still at the version read.
    Unlocked,
}

/// Reads the sessions of `tokens`, their carts with the product `skus[i]` of each request
/// (`""`: none), in one statement: one entry per request, `None` where no live session has
/// that token or its cart has no row yet (`create_for`). Every change of a cart starts here.
/// Locked, the cart row lock serialises the changes of one cart; the carts of a batch are
/// locked in id order, so two batches cannot deadlock on them.
///
/// `known[i]` is the cart the caller last saw for that token, if any: when the cart is that
/// cart at that version and catalog revision, its lines are not read again (every change bumps
/// the version, every product change the revision, so they are these). When it is a few
/// versions behind at that revision and the cart's recent history (V17) covers the versions it
/// lacks, only those line writes are read, and the copy is brought up to date.
///
/// The statement reads the carts as of its snapshot, taken before it waited for their locks.
/// When a cart's version in that snapshot is the one the lock found, nobody changed the cart
/// in between and the lines read are current; when it is not, the read is `None`.
pub async fn read_for_change(
    conn: &mut PgConnection,
    tokens: &[Vec<u8>],
    skus: &[String],
    known: &[Option<Arc<CartView>>],
    reading: Reading,
) -> Result<Vec<Option<ChangingCart>>, sqlx::Error> {
    let known_cart: Vec<Uuid> = known.iter().map(|k| k.as_ref().map_or(Uuid::nil(), |k| k.id)).collect();
    let known_version: Vec<i64> = known.iter().map(|k| k.as_ref().map_or(-1, |k| k.version)).collect();
    let known_revision: Vec<i64> = known.iter().map(|k| k.as_ref().map_or(-1, |k| k.catalog_revision)).collect();
    let rows = sqlx::query!(
        r#"WITH request AS (
               SELECT r.*
               FROM unnest($1::bytea[], $2::text[], $3::uuid[], $4::bigint[], $5::bigint[])
                    WITH ORDINALITY AS r(token_hash, sku, known_cart, known_version, known_revision, i)
           ), session AS (
               SELECT q.i, q.sku, q.known_cart, q.known_version, q.known_revision,
                      s.id AS session_id, s.cart_id, s.expires_at
               FROM request q JOIN sessions s ON s.token_hash = q.token_hash AND s.expires_at > now()
           ), locked AS MATERIALIZED (
               -- Unlocked, nothing is locked: PostgreSQL tests the constant $6 before the scan.
               SELECT c.id, c.version FROM carts c
               WHERE $6 AND c.id = ANY (ARRAY(SELECT cart_id FROM session))
               ORDER BY c.id
               FOR UPDATE
           ), seen AS (
               SELECT c.id, c.version, c.updated_at, c.recent_from, c.recent_upto,
                      c.recent_versions, c.recent_skus, c.recent_quantities
               FROM carts c
               WHERE c.id = ANY (ARRAY(SELECT cart_id FROM session))
           ), found AS (
               -- Locked: the version the lock found (a cart deleted meanwhile drops out).
               -- Unlocked: the version read.
               SELECT id, version FROM locked
               UNION ALL
               SELECT id, version FROM seen WHERE NOT $6
           ), decided AS MATERIALIZED (
               -- Materialized, so that the product a change names is read once per change:
               -- inlined, the planner joined it to every line of the cart (a bench cart of 28
               -- lines read its product 28 times, half of the statement's buffer reads).
               SELECT q.*, k.version, seen.version AS seen_version, seen.updated_at, r.revision,
                      (k.id = q.known_cart AND k.version = q.known_version AND r.revision = q.known_revision) AS known,
                      coalesce(k.id = q.known_cart AND r.revision = q.known_revision AND q.known_version < k.version
                               AND seen.recent_upto = k.version AND q.known_version >= seen.recent_from,
                               false) AS catch_up,
                      seen.recent_from, seen.recent_upto,
                      seen.recent_versions, seen.recent_skus, seen.recent_quantities,
                      t.name AS target_name, t.price_amount AS target_price, t.price_currency AS target_currency,
                      t.available AS target_available
               FROM session q
               JOIN found k ON k.id = q.cart_id
               JOIN seen ON seen.id = k.id
               CROSS JOIN catalog_revision r
               LEFT JOIN product_offers t ON t.sku = q.sku
           )
           SELECT d.i AS "i!", d.session_id AS "session_id!", d.expires_at AS "session_expires_at!",
                  d.cart_id AS "cart_id!", d.version AS "version!",
                  d.seen_version AS "seen_version!", d.updated_at AS "updated_at!", d.revision AS "revision!",
                  d.known AS "known!", d.catch_up AS "catch_up!",
                  d.recent_from, d.recent_upto, d.recent_versions AS "recent_versions!",
                  d.recent_skus AS "recent_skus!", d.recent_quantities AS "recent_quantities!",
                  l.sku AS "sku?", l.name AS "name?", l.quantity AS "quantity?",
                  l.price_amount AS "price_amount?", l.price_currency AS "price_currency?: Currency",
                  d.target_name AS "target_name?", d.target_price AS "target_price?",
                  d.target_currency AS "target_currency?: Currency", d.target_available AS "target_available?"
           FROM decided d
           LEFT JOIN LATERAL (
               -- Every line, or only the writes the caller's copy lacks, oldest first (a
               -- removed line, quantity 0, has no product), or nothing when the copy is current.
               SELECT c.sku, c.name, c.quantity, c.price_amount, c.price_currency, c.position AS ord, 0::bigint AS ord2
               FROM cart_contents c
               WHERE c.cart_id = d.cart_id AND NOT d.known AND NOT d.catch_up
               UNION ALL
               -- Versions oldest first, and each version's writes in the order it wrote them.
               SELECT w.sku, p.name, w.quantity, p.price_amount, p.price_currency, w.version, w.n
               FROM unnest(d.recent_skus, d.recent_quantities, d.recent_versions)
                    WITH ORDINALITY AS w(sku, quantity, version, n)
               LEFT JOIN products p ON p.sku = w.sku AND w.quantity > 0
               WHERE d.catch_up AND w.version > d.known_version
           ) l ON true
           ORDER BY d.i, l.ord, l.ord2"#,
        tokens,
        skus,
        &known_cart,
        &known_version,
        &known_revision,
        reading == Reading::Locked
    )
    .fetch_all(conn)
    .await?;
    let mut carts: Vec<Option<ChangingCart>> = vec![None; tokens.len()];
    let mut rows = rows.into_iter().peekable();
    while let Some(first) = rows.next() {
        let i = first.i;
        let mut lines = vec![(first.sku, first.name, first.quantity, first.price_amount, first.price_currency)];
        while let Some(row) = rows.next_if(|r| r.i == i) {
            lines.push((row.sku, row.name, row.quantity, row.price_amount, row.price_currency));
        }
        let Some(k) = usize::try_from(i - 1).ok().filter(|&k| k < carts.len()) else { continue };
        // `known` and `catch_up` are only true where the caller's copy is this cart.
        let (view, source) = match &known[k] {
            Some(known) if first.known => (Some(CartView::clone(known)), Source::Cached),
            Some(known) if first.catch_up => {
                (CartView::clone(known).caught_up(first.version, first.updated_at, lines), Source::CaughtUp)
            }
            _ => {
                let view = assemble(first.cart_id, first.version, first.updated_at, first.revision, lines.into_iter());
                (Some(view), Source::Whole)
            }
        };
        // `None` also when the copy could not be caught up: read under the lock instead.
        let read = view.filter(|_| first.seen_version == first.version).map(|cart| CartRead {
            cart,
            product: LineProduct::found(
                &first.target_name,
                first.target_price,
                &first.target_currency,
                first.target_available,
            ),
            recent: Recent::read(
                first.recent_from,
                first.recent_upto,
                first.recent_versions,
                first.recent_skus,
                first.recent_quantities,
            ),
        });
        let source = if read.is_some() { source } else { Source::Whole };
        carts[k] = Some(ChangingCart {
            session_id: first.session_id,
            session_expires_at: first.session_expires_at,
            cart_id: first.cart_id,
            version: first.version,
            read,
            source,
        });
    }
    Ok(carts)
}

/// A cart as a change reads it under the cart's lock.
#[derive(Debug, Clone)]
pub struct CartRead {
    pub cart: CartView,
    /// The product the change names; `None`: no such product.
    pub product: Option<LineProduct>,
    /// The cart's history, which the change continues.
    pub recent: Recent,
}

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
                  c.recent_from, c.recent_upto, c.recent_versions, c.recent_skus, c.recent_quantities,
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
    let recent = Recent::read(
        first.recent_from,
        first.recent_upto,
        first.recent_versions.clone(),
        first.recent_skus.clone(),
        first.recent_quantities.clone(),
    );
    let (version, updated_at, revision) = (first.version, first.updated_at, first.revision);
    let lines = rows.into_iter().map(|r| (r.sku, r.name, r.quantity, r.price_amount, r.price_currency));
    let cart = assemble(cart_id, version, updated_at, revision, lines);
    Ok(Some(CartRead { cart, product, recent }))
}

/// How many line writes a cart row keeps (V17): enough for the versions a replica's copy of
/// a cart falls behind through a round-robin balancer (each one-line change is one write; a
/// copy 8 versions behind is 1 in 256 with two replicas), few enough to keep the row small.
const RECENT_WRITES: usize = 8;

/// A cart's recent line writes (V17) as its row keeps them: every write of each version in
/// (from, upto], newest first; a quantity of 0 is a line removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    from: i64,
    upto: i64,
    writes: Vec<(i64, String, i32)>,
}

impl Recent {
    /// No history: a cart no cart change has written yet. Versions start at 0, so no
    /// version continues it.
    pub fn none() -> Recent {
        Recent { from: -1, upto: -1, writes: Vec::new() }
    }

    /// The history from its columns.
    fn read(
        from: Option<i64>,
        upto: Option<i64>,
        versions: Vec<i64>,
        skus: Vec<String>,
        quantities: Vec<i32>,
    ) -> Recent {
        match (from, upto) {
            (Some(from), Some(upto)) => {
                let writes = versions.into_iter().zip(skus).zip(quantities).map(|((v, sku), q)| (v, sku, q)).collect();
                Recent { from, upto, writes }
            }
            _ => Recent::none(),
        }
    }

    /// The history once `writes` have made version `version + 1` of a cart at `version`: this
    /// version's writes first, then the history so far if it reaches `version` (anything else
    /// that bumped the version broke it, and it starts again here), kept to `RECENT_WRITES`.
    /// Cut inside a version, that version's writes are partly gone: it then starts at it.
    pub fn after(self, version: i64, writes: &[(String, i32)]) -> Recent {
        let mut kept: Vec<(i64, String, i32)> =
            writes.iter().map(|(sku, quantity)| (version + 1, sku.clone(), *quantity)).collect();
        let mut from = version;
        if self.upto == version {
            from = self.from;
            kept.extend(self.writes);
        }
        if let Some(&(cut, ..)) = kept.get(RECENT_WRITES) {
            from = from.max(cut);
            kept.truncate(RECENT_WRITES);
        }
        Recent { from, upto: version + 1, writes: kept }
    }
}

/// What a change's write requires beyond its cart's version and its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assumed {
    /// Decided on the cart as just read, with the product it names: nothing more.
    Nothing,
    /// Decided on this replica's copy of the cart, unread (`cart_changes`): the catalog still at
    /// the copy's revision (so its names and prices, and the product named, are current), and
    /// `stock`, the SKU's line as the change left it, still covered by what is available.
    Copy { catalog_revision: i64, stock: Option<(String, i64)> },
}

/// The lines a batch of cart changes writes, net of what the carts held: each (cart, SKU)
/// at most once, so one statement can write them all.
#[derive(Debug, Default)]
pub struct LineWrites {
    /// Carts changed: each is bumped once (a batch changes a cart once).
    carts: Vec<Uuid>,
    /// The version each cart was read at: a cart at another version now is not written.
    versions: Vec<i64>,
    /// The session each cart was read through: a cart that session no longer names (revoked,
    /// expired, or attached to its customer's cart meanwhile) is not written.
    sessions: Vec<Uuid>,
    /// What each change decided on a copy of its cart assumed (`Assumed`); -1, "" and 0 for a
    /// change decided on a cart just read, which assumes nothing more.
    revisions: Vec<i64>,
    stock_skus: Vec<String>,
    stock_needed: Vec<i64>,
    /// Each changed cart's history once changed (`Recent`), which the statement writes
    /// (`History`) and the answered copy then keeps (`into_histories`).
    histories: Vec<Recent>,
    set_cart: Vec<Uuid>,
    set_sku: Vec<String>,
    set_quantity: Vec<i32>,
    removed_cart: Vec<Uuid>,
    removed_sku: Vec<String>,
    /// Sessions whose expiry slides with this change.
    slide: Vec<Uuid>,
}

impl LineWrites {
    /// A change of `cart`, read through `session` at `version` with its history `recent`: the
    /// cart is bumped and each line set (a quantity of 0: removed).
    pub fn change(
        &mut self,
        cart: Uuid,
        session: Uuid,
        version: i64,
        recent: Recent,
        lines: &[(String, i32)],
        assumed: Assumed,
    ) {
        for (sku, quantity) in lines {
            if *quantity == 0 {
                self.removed_cart.push(cart);
                self.removed_sku.push(sku.clone());
            } else {
                self.set_cart.push(cart);
                self.set_sku.push(sku.clone());
                self.set_quantity.push(*quantity);
            }
        }
        self.carts.push(cart);
        self.versions.push(version);
        self.sessions.push(session);
        let (revision, (stock_sku, stock_needed)) = match assumed {
            Assumed::Nothing => (-1, (String::new(), 0)),
            Assumed::Copy { catalog_revision, stock } => (catalog_revision, stock.unwrap_or_default()),
        };
        self.revisions.push(revision);
        self.stock_skus.push(stock_sku);
        self.stock_needed.push(stock_needed);
        self.histories.push(recent.after(version, lines));
    }

    /// Each changed cart's history once changed, in the order of the changes.
    pub fn into_histories(self) -> Vec<Recent> {
        self.histories
    }

    /// Slides this session's expiry with the change.
    pub fn slide(&mut self, session: Uuid) {
        self.slide.push(session);
    }

    /// Whether no cart is changed.
    pub fn is_empty(&self) -> bool {
        self.carts.is_empty()
    }
}

/// The histories of a batch's carts as the write statement takes them: cart i's writes are
/// `[first[i], last[i]]` of the flattened arrays, 1-based and inclusive like SQL's slices.
#[derive(Debug, Default, PartialEq)]
struct History<'a> {
    from: Vec<i64>,
    upto: Vec<i64>,
    first: Vec<i32>,
    last: Vec<i32>,
    versions: Vec<i64>,
    skus: Vec<&'a str>,
    quantities: Vec<i32>,
}

impl<'a> History<'a> {
    fn of(histories: &'a [Recent]) -> History<'a> {
        let mut h = History::default();
        for recent in histories {
            h.from.push(recent.from);
            h.upto.push(recent.upto);
            // At most RECENT_WRITES a cart and MAX_BATCH carts a batch: it fits.
            h.first.push(h.versions.len() as i32 + 1);
            for (made, sku, quantity) in &recent.writes {
                h.versions.push(*made);
                h.skus.push(sku);
                h.quantities.push(*quantity);
            }
            h.last.push(h.versions.len() as i32);
        }
        h
    }
}

/// Writes a batch of cart changes in one statement: bumps each cart's version and keeps its
/// history (V17), upserts and deletes lines, and slides the sessions due to slide. A cart is
/// written only while it is at the version it was read at, its session still names it, and
/// the catalog and stock are as its change assumed (`Assumed`); the UPDATE waits for the row
/// lock of a change in flight and then tests the row that change left. Returns the carts
/// written, each with its new `updated_at`.
///
/// In a transaction that locked the carts every cart is written (nothing else can have
/// changed them), and the statement also lifts the statement timeout for the COMMIT that
/// follows, as `store::commit` does and for the same reason, in this statement rather than a
/// round trip of its own: the caller then commits with `Transaction::commit`. Alone (no
/// transaction) the statement is its own transaction, and its commit is not timed.
pub async fn write_changes(
    conn: &mut PgConnection,
    w: &LineWrites,
    session_ttl: Duration,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    let h = History::of(&w.histories);
    let rows = sqlx::query!(
        r#"WITH bumped AS (
               UPDATE carts c SET version = c.version + 1, updated_at = now(),
                      recent_from = u.recent_from, recent_upto = u.recent_upto,
                      recent_versions = ($9::bigint[])[u.first:u.last],
                      recent_skus = ($10::text[])[u.first:u.last],
                      recent_quantities = ($11::int[])[u.first:u.last]
               FROM unnest($1::uuid[], $16::bigint[], $17::uuid[], $12::bigint[], $13::bigint[], $14::int[], $15::int[],
                           $18::bigint[], $19::text[], $20::bigint[])
                    AS u(id, version, session, recent_from, recent_upto, first, last, revision, stock_sku, stock_needed)
               WHERE c.id = u.id AND c.version = u.version
                 AND EXISTS (SELECT 1 FROM sessions s
                             WHERE s.id = u.session AND s.cart_id = u.id AND s.expires_at > now())
                 -- Decided on a copy (`Assumed::Copy`): the catalog and the stock as assumed.
                 AND (u.revision < 0 OR u.revision = (SELECT revision FROM catalog_revision))
                 AND (u.stock_needed = 0
                      OR EXISTS (SELECT 1 FROM product_offers p
                                 WHERE p.sku = u.stock_sku AND p.available >= u.stock_needed))
               RETURNING c.id, c.updated_at
           ), set_lines AS (
               INSERT INTO cart_lines (cart_id, sku, quantity)
               SELECT s.cart_id, s.sku, s.quantity
               FROM unnest($2::uuid[], $3::text[], $4::int[]) AS s(cart_id, sku, quantity)
               WHERE s.cart_id IN (SELECT id FROM bumped)
               ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity
           ), removed AS (
               DELETE FROM cart_lines l USING unnest($5::uuid[], $6::text[]) AS d(cart_id, sku)
               WHERE l.cart_id = d.cart_id AND l.sku = d.sku AND d.cart_id IN (SELECT id FROM bumped)
           ), slid AS (
               UPDATE sessions SET expires_at = now() + make_interval(secs => $8)
               WHERE id = ANY($7) AND expires_at > now()
           )
           SELECT b.id AS "id!", b.updated_at AS "updated_at!", set_config('statement_timeout', '0', true) AS "lifted!"
           FROM bumped b"#,
        &w.carts,
        &w.set_cart,
        &w.set_sku,
        &w.set_quantity,
        &w.removed_cart,
        &w.removed_sku,
        &w.slide,
        session_ttl.as_secs_f64(),
        &h.versions,
        &h.skus as &[&str],
        &h.quantities,
        &h.from,
        &h.upto,
        &h.first,
        &h.last,
        &w.versions,
        &w.sessions,
        &w.revisions,
        &w.stock_skus,
        &w.stock_needed
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.updated_at)).collect())
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

/// Locks a cart for a change made outside `read_for_change` (the attach merge).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(sku, q)| (sku.to_string(), *q)).collect()
    }

    fn product(name: &str, unit_price: i64) -> LineProduct {
        LineProduct { name: name.into(), unit_price, currency: Currency::parse("EUR").unwrap(), available: 100 }
    }

    #[test]
    fn a_cart_answers_its_lines_rendered_once_and_shared_by_its_copies() {
        let eur = Currency::parse("EUR").unwrap();
        let updated_at = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z").unwrap().with_timezone(&Utc);
        let mut cart =
            CartView { id: Uuid::nil(), version: 3, updated_at, catalog_revision: 1, lines: Vec::new(), recent: None };
        cart.set_line("A-1", 2, &product("Mug \"large\"\n", 450));
        cart.set_line("B-2", 1, &product("Plate", 1000));
        let line = |sku: &str, name: &str, quantity: i64, price: i64| {
            serde_json::json!({
                "line_total": {"amount": price * quantity, "currency": "EUR"}, "name": name,
                "quantity": quantity, "sku": sku, "unit_price": {"amount": price, "currency": "EUR"},
            })
        };
        let expected = |version: i64, lines: Vec<Value>, count: i64, subtotal: i64| {
            serde_json::json!({
                "id": Uuid::nil(), "item_count": count, "lines": lines,
                "subtotal": {"amount": subtotal, "currency": "EUR"},
                "updated_at": crate::store::timestamp(&updated_at), "version": version,
            })
        };
        // Byte for byte what serialising the whole tree writes: the same answer as before.
        let before = expected(3, vec![line("A-1", "Mug \"large\"\n", 2, 450), line("B-2", "Plate", 1, 1000)], 3, 1900);
        assert_eq!(cart.to_bytes(&eur), serde_json::to_vec(&before).unwrap());

        // A copy changed: its changed line is rendered anew, the other is the same line.
        let mut copy = cart.clone();
        copy.version = 4;
        copy.set_line("A-1", 5, &product("Mug \"large\"\n", 450));
        assert!(Arc::ptr_eq(&cart.lines[1], &copy.lines[1]));
        assert!(!Arc::ptr_eq(&cart.lines[0], &copy.lines[0]));
        let after = expected(4, vec![line("A-1", "Mug \"large\"\n", 5, 450), line("B-2", "Plate", 1, 1000)], 6, 3250);
        assert_eq!(copy.to_bytes(&eur), serde_json::to_vec(&after).unwrap());
        assert_eq!(copy.to_json(&eur), after);
        // The original still answers what it held.
        assert_eq!(cart.to_bytes(&eur), serde_json::to_vec(&before).unwrap());
    }

    #[test]
    fn a_history_grows_newest_first_while_it_reaches_the_version() {
        let one = Recent::none().after(4, &writes(&[("A", 1)]));
        assert_eq!((one.from, one.upto), (4, 5));
        let two = one.after(5, &writes(&[("B", 2), ("A", 0)]));
        assert_eq!((two.from, two.upto), (4, 6));
        assert_eq!(two.writes, vec![(6, "B".into(), 2), (6, "A".into(), 0), (5, "A".into(), 1)]);
    }

    #[test]
    fn a_version_made_elsewhere_starts_the_history_again() {
        // Version 6 came from a checkout or a merge, which keep no history.
        let broken = Recent::none().after(4, &writes(&[("A", 1)])).after(6, &writes(&[("B", 1)]));
        assert_eq!((broken.from, broken.upto), (6, 7));
        assert_eq!(broken.writes, vec![(7, "B".into(), 1)]);
    }

    #[test]
    fn a_history_cut_inside_a_version_starts_at_that_version() {
        let mut recent = Recent::none();
        for v in 0..7 {
            recent = recent.after(v, &writes(&[("A", v as i32 + 1)]));
        }
        // Versions 1..=7, one write each; clearing three lines makes version 8.
        let cut = recent.after(7, &writes(&[("A", 0), ("B", 0), ("C", 0)]));
        assert_eq!(cut.writes.len(), RECENT_WRITES);
        assert_eq!(cut.writes.last(), Some(&(3, "A".into(), 3)));
        // Versions 3..=8 are whole: a copy at version 2 or later can catch up.
        assert_eq!((cut.from, cut.upto), (2, 8));
        // Cut between two writes of one version: that version is no longer whole.
        let big = Recent::none().after(0, &writes(&[("A", 1)])).after(1, &writes(&[("X", 0); 9]));
        assert_eq!((big.from, big.upto), (2, 2));
    }

    #[test]
    fn each_cart_of_a_batch_gets_its_own_slice_of_the_written_history() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut w = LineWrites::default();
        w.change(a, Uuid::nil(), 3, Recent::none(), &writes(&[("A", 2)]), Assumed::Nothing);
        // A version whose change wrote no line (a line set to what it was) still bumps.
        w.change(b, Uuid::nil(), 0, Recent::none(), &[], Assumed::Nothing);
        let before = Recent::none().after(6, &writes(&[("X", 1)]));
        w.change(c, Uuid::nil(), 7, before, &writes(&[("Y", 1), ("X", 0)]), Assumed::Nothing);
        assert_eq!(w.carts, vec![a, b, c]);
        let h = History::of(&w.histories);
        assert_eq!((h.first.clone(), h.last.clone()), (vec![1, 2, 2], vec![1, 1, 4]));
        assert_eq!((h.from.clone(), h.upto.clone()), (vec![3, 0, 6], vec![4, 1, 8]));
        assert_eq!(h.versions, vec![4, 8, 8, 7]);
        assert_eq!(h.skus, vec!["A", "Y", "X", "X"]);
        assert_eq!(h.quantities, vec![2, 1, 0, 1]);
        assert_eq!((w.set_sku, w.removed_sku), (vec!["A".to_owned(), "Y".to_owned()], vec!["X".to_owned()]));
    }
}
