//! Reports for merchants: stock health, movement series, best sellers, reservations held.
//!
//! Figures come from the rollups (`store/reports.rs`, kept by `tasks/rollup.rs`) plus the
//! few movements the rollups have not reached yet (`tail`), read in one snapshot: a report
//! includes everything committed before it, without reading the ledger in bulk. The tail is
//! merged here, in the same terms as `report_movement_facts` defines for the rollups.
//!
//! Window sums cover whole UTC hours: the window starts at the top of the hour `window` ago
//! (rollups are hourly; the ledger has no index on time, and adding one would tax every
//! checkout). Rates divide by the window as asked (`7d` is 7 days).

pub mod csv;
pub mod openapi;

use std::{cmp::Ordering, collections::BTreeMap, future::Future, pin::Pin, time::Duration};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use crate::store::{
    self,
    reports::{self as rstore, Fact, Part},
    stock::StockStatus,
};

/// The longest window or range a report covers.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// Days of cover are capped: beyond a year the figure says nothing more.
pub const MAX_DAYS_OF_COVER: f64 = 365.0;

/// A report window ending now.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now: DateTime<Utc>,
    /// The top of the hour `window` before now.
    pub start: DateTime<Utc>,
    /// The first midnight at or after `start`: days from here, hours before it.
    pub day_start: DateTime<Utc>,
    pub days: f64,
}

impl Window {
    /// `raw` as the contract writes windows (`7d`, `12h`); `None` is the default, 30 days.
    pub fn parse(raw: Option<&str>, now: DateTime<Utc>) -> Result<Window, String> {
        let length = match raw {
            None => DEFAULT_WINDOW,
            Some(raw) => crate::config::parse_duration(raw).map_err(|e| format!("window: {e}"))?,
        };
        if length < Duration::from_secs(1) || length > MAX_WINDOW {
            return Err("window must be from 1s to 366d".into());
        }
        let span = TimeDelta::from_std(length).map_err(|_| "window too large".to_string())?;
        let start = (now - span).duration_trunc(TimeDelta::hours(1)).map_err(|e| e.to_string())?;
        let midnight = start.duration_trunc(TimeDelta::days(1)).map_err(|e| e.to_string())?;
        let day_start = if midnight == start { start } else { midnight + TimeDelta::days(1) };
        Ok(Window { now, start, day_start, days: length.as_secs_f64() / 86_400.0 })
    }
}

/// The status filter and sort order of the stock report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockSort {
    Sku,
    DaysOfCover,
    UnitsSold,
    VelocityPerDay,
}

impl StockSort {
    pub fn parse(raw: &str) -> Option<StockSort> {
        Some(match raw {
            "sku" => StockSort::Sku,
            "days_of_cover" => StockSort::DaysOfCover,
            "units_sold" => StockSort::UnitsSold,
            "velocity_per_day" => StockSort::VelocityPerDay,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StockItem {
    pub sku: String,
    pub name: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub status: StockStatus,
    pub units_sold: i64,
    pub units_received: i64,
    pub velocity_per_day: f64,
    pub days_of_cover: Option<f64>,
    pub sell_through: Option<f64>,
    pub stockout_seconds: i64,
    pub last_movement_at: Option<DateTime<Utc>>,
}

impl StockItem {
    pub fn to_json(&self) -> Value {
        json!({
            "sku": self.sku,
            "name": self.name,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "status": self.status.as_str(),
            "units_sold": self.units_sold,
            "units_received": self.units_received,
            "velocity_per_day": self.velocity_per_day,
            "days_of_cover": self.days_of_cover,
            "sell_through": self.sell_through,
            "stockout_seconds": self.stockout_seconds,
            "last_movement_at": self.last_movement_at.as_ref().map(store::timestamp),
        })
    }

    /// The sort key: ascending days of cover (none last), descending sales and velocity.
    fn key(&self, sort: StockSort) -> Option<f64> {
        match sort {
            StockSort::Sku => None,
            StockSort::DaysOfCover => self.days_of_cover,
            StockSort::UnitsSold => Some(self.units_sold as f64),
            StockSort::VelocityPerDay => Some(self.velocity_per_day),
        }
    }
}

pub const STOCK_COLUMNS: &[&str] = &[
    "sku",
    "name",
    "on_hand",
    "reserved",
    "available",
    "status",
    "units_sold",
    "units_received",
    "velocity_per_day",
    "days_of_cover",
    "sell_through",
    "stockout_seconds",
    "last_movement_at",
];

/// Where a page of the stock report resumes: the sort key and SKU of the last item.
#[derive(Debug, Clone, PartialEq)]
pub struct StockCursor {
    key: Option<f64>,
    sku: String,
}

impl StockCursor {
    pub fn encode(&self) -> String {
        match self.key {
            Some(k) => format!("{k}~{}", self.sku),
            None => format!("~{}", self.sku),
        }
    }

    pub fn parse(raw: &str) -> Option<StockCursor> {
        let (key, sku) = raw.split_once('~')?;
        let key = if key.is_empty() { None } else { Some(key.parse::<f64>().ok().filter(|k| k.is_finite())?) };
        crate::domain::Sku::parse(sku).ok()?;
        Some(StockCursor { key, sku: sku.to_owned() })
    }
}

fn compare(sort: StockSort, a: (Option<f64>, &str), b: (Option<f64>, &str)) -> Ordering {
    let by_key = match sort {
        StockSort::Sku => Ordering::Equal,
        StockSort::DaysOfCover => match (a.0, b.0) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        StockSort::UnitsSold | StockSort::VelocityPerDay => b.0.unwrap_or(0.0).total_cmp(&a.0.unwrap_or(0.0)),
    };
    by_key.then_with(|| a.1.cmp(b.1))
}

pub struct StockQuery {
    pub window: Window,
    pub status: Option<StockStatus>,
    pub sort: StockSort,
    pub limit: usize,
    pub after: Option<StockCursor>,
}

/// A read of some SKUs' rows on a connection in the report's snapshot.
type PartRows<'c, T> = Pin<Box<dyn Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'c>>;

/// Runs `read` over every SKU: the lower half of them on `conn` and the upper half on a second
/// connection in the same snapshot when the pool has one idle or room to open one, so the
/// per-SKU lookups run on two cores; all on `conn` otherwise. A report never waits for another
/// request's connection.
async fn over_every_sku<T>(
    conn: &mut PgConnection,
    pool: &PgPool,
    read: impl for<'c> Fn(&'c mut PgConnection, Part) -> PartRows<'c, T>,
) -> Result<Vec<T>, sqlx::Error> {
    let second = match pool.try_acquire() {
        Some(idle) => Some(idle),
        // Opening one takes a few milliseconds; past that, another request got there first.
        None if pool.size() < pool.options().get_max_connections() => {
            tokio::time::timeout(Duration::from_millis(100), pool.acquire()).await.ok().and_then(Result::ok)
        }
        None => None,
    };
    let Some(mut second) = second else {
        return read(conn, Part::all()).await;
    };
    let Some(middle) = rstore::middle_sku(conn).await? else {
        return read(conn, Part::all()).await;
    };
    let mut other = rstore::share_snapshot(conn, &mut second).await?;
    let lower = Part { from: String::new(), to: Some(middle.clone()) };
    let upper = Part { from: middle, to: None };
    let (mut rows, more) = tokio::try_join!(read(conn, lower), read(&mut other, upper))?;
    other.commit().await?;
    rows.extend(more);
    Ok(rows)
}

/// One page of the stock report and the cursor of the next.
pub async fn stock(
    conn: &mut PgConnection,
    pool: &PgPool,
    q: &StockQuery,
) -> Result<(Vec<StockItem>, Option<StockCursor>), sqlx::Error> {
    let w = q.window;
    let cursor = rstore::begin_snapshot(conn).await?;
    // In SKU order with no status filter, the page is the next `limit + 1` SKUs: only they are
    // read. Any other order or a status filter needs every SKU's figures to place the page.
    let rows = match (q.sort, q.status) {
        (StockSort::Sku, None) => {
            let after = q.after.as_ref().map(|c| c.sku.as_str());
            rstore::stock_rows(conn, cursor, w.start, w.now, after, Some(q.limit as i64 + 1), Part::all()).await?
        }
        _ => {
            over_every_sku(conn, pool, |c, part| {
                Box::pin(rstore::stock_rows(c, cursor, w.start, w.now, None, None, part))
            })
            .await?
        }
    };
    let tail = rstore::tail(conn, cursor).await?;
    let mut tail_by_sku: BTreeMap<&str, Vec<&Fact>> = BTreeMap::new();
    for f in &tail {
        tail_by_sku.entry(f.sku.as_str()).or_default().push(f);
    }
    let mut items: Vec<StockItem> = rows
        .into_iter()
        .map(|r| {
            let mut sold = r.units_sold;
            let mut received = r.units_received;
            let mut stockout = r.stockout_seconds;
            let mut last = r.last_movement_at;
            for f in tail_by_sku.get(r.sku.as_str()).into_iter().flatten() {
                if f.placed_at.is_some_and(|p| p >= w.start) {
                    sold += f.sold;
                }
                if f.at >= w.start {
                    received += f.received;
                }
                last = last.max(Some(f.at));
                // The rolled-up marks were counted as holding until now: a newer mark that
                // reached 0 adds the time since, one that left 0 takes it back.
                let since = seconds(w.now - f.at.max(w.start)).max(0.0);
                match f.out_mark {
                    Some(true) => stockout += since,
                    Some(false) => stockout -= since,
                    None => {}
                }
            }
            let available = r.on_hand - r.reserved;
            let velocity = sold as f64 / w.days;
            StockItem {
                status: StockStatus::of(available, r.low_stock_threshold),
                sku: r.sku,
                name: r.name,
                on_hand: r.on_hand,
                reserved: r.reserved,
                available,
                units_sold: sold,
                units_received: received,
                velocity_per_day: velocity,
                days_of_cover: (velocity > 0.0).then(|| (available as f64 / velocity).min(MAX_DAYS_OF_COVER)),
                sell_through: (sold + available > 0).then(|| sold as f64 / (sold + available) as f64),
                stockout_seconds: stockout.max(0.0).floor() as i64,
                last_movement_at: last,
            }
        })
        .filter(|i| q.status.is_none_or(|s| s == i.status))
        .collect();
    items.sort_by(|a, b| compare(q.sort, (a.key(q.sort), &a.sku), (b.key(q.sort), &b.sku)));
    let from = match &q.after {
        None => 0,
        Some(c) => {
            items.partition_point(|i| compare(q.sort, (i.key(q.sort), &i.sku), (c.key, &c.sku)) != Ordering::Greater)
        }
    };
    let mut page: Vec<StockItem> = items.into_iter().skip(from).take(q.limit + 1).collect();
    let next = if page.len() > q.limit {
        page.truncate(q.limit);
        page.last().map(|i| StockCursor { key: i.key(q.sort), sku: i.sku.clone() })
    } else {
        None
    };
    Ok((page, next))
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_microseconds().map_or(d.num_seconds() as f64, |us| us as f64 / 1e6)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    Units,
    Revenue,
}

#[derive(Debug, Clone)]
pub struct TopItem {
    pub sku: String,
    pub name: String,
    pub units: i64,
    pub revenue: i64,
    pub abc: char,
}

pub const TOP_COLUMNS: &[&str] = &["sku", "name", "units", "revenue", "currency", "abc"];

/// Best sellers over the window, `limit` of them, each with its ABC class among all SKUs sold.
pub async fn top(
    conn: &mut PgConnection,
    pool: &PgPool,
    window: Window,
    by: TopBy,
    limit: usize,
) -> Result<Vec<TopItem>, sqlx::Error> {
    let cursor = rstore::begin_snapshot(conn).await?;
    let rows = over_every_sku(conn, pool, |c, part| Box::pin(rstore::sales(c, cursor, window.start, part))).await?;
    let tail = rstore::tail(conn, cursor).await?;
    let mut sales: BTreeMap<String, (String, i64, i64)> =
        rows.into_iter().map(|r| (r.sku, (r.name, r.units, r.revenue))).collect();
    let mut unnamed = Vec::new();
    for f in tail.iter().filter(|f| f.sold != 0 && f.placed_at.is_some_and(|p| p >= window.start)) {
        let entry = sales.entry(f.sku.clone()).or_insert_with(|| {
            unnamed.push(f.sku.clone());
            (String::new(), 0, 0)
        });
        entry.1 += f.sold;
        entry.2 += f.revenue;
    }
    if !unnamed.is_empty() {
        for (sku, name) in rstore::names(conn, &unnamed).await? {
            if let Some(e) = sales.get_mut(&sku) {
                e.0 = name;
            }
        }
    }
    let mut items: Vec<TopItem> = sales
        .into_iter()
        .filter(|(_, (_, units, _))| *units > 0)
        .map(|(sku, (name, units, revenue))| TopItem { sku, name, units, revenue, abc: 'C' })
        .collect();
    classify(&mut items);
    match by {
        TopBy::Revenue => {
            items.sort_by(|a, b| b.revenue.cmp(&a.revenue).then(b.units.cmp(&a.units)).then(a.sku.cmp(&b.sku)))
        }
        TopBy::Units => {
            items.sort_by(|a, b| b.units.cmp(&a.units).then(b.revenue.cmp(&a.revenue)).then(a.sku.cmp(&b.sku)))
        }
    }
    items.truncate(limit);
    Ok(items)
}

/// ABC by revenue: in descending revenue, a SKU is A while the revenue before it is under 80%
/// of the total (so the SKU that crosses 80% is A), B under 95%, C after.
fn classify(items: &mut [TopItem]) {
    items.sort_by(|a, b| b.revenue.cmp(&a.revenue).then(a.sku.cmp(&b.sku)));
    let total: i128 = items.iter().map(|i| i128::from(i.revenue.max(0))).sum();
    let mut before: i128 = 0;
    for item in items.iter_mut() {
        item.abc = if before * 100 < total * 80 {
            'A'
        } else if before * 100 < total * 95 {
            'B'
        } else {
            'C'
        };
        before += i128::from(item.revenue.max(0));
    }
}

pub const MOVEMENT_COLUMNS: &[&str] =
    &["bucket_start", "received", "sold", "released", "shipped", "adjusted", "reserved_delta"];

/// A movement series: buckets (hours or UTC days) starting in `[trunc(from), to)` that saw a
/// movement, oldest first; of one SKU or of all.
pub async fn movements(
    conn: &mut PgConnection,
    sku: Option<&str>,
    daily: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<rstore::Bucket>, sqlx::Error> {
    let unit = if daily { TimeDelta::days(1) } else { TimeDelta::hours(1) };
    let trunc = |t: DateTime<Utc>| t.duration_trunc(unit).unwrap_or(t);
    let from = trunc(from);
    let cursor = rstore::begin_snapshot(conn).await?;
    let rolled = rstore::buckets(conn, sku.unwrap_or("*"), daily, from, to).await?;
    let tail = rstore::tail(conn, cursor).await?;
    let mut series: BTreeMap<DateTime<Utc>, rstore::Bucket> = rolled.into_iter().map(|b| (b.start, b)).collect();
    let mut add = |t: DateTime<Utc>, f: &dyn Fn(&mut rstore::Bucket)| {
        let start = trunc(t);
        if start >= from && start < to {
            f(series.entry(start).or_insert_with(|| rstore::Bucket { start, ..Default::default() }));
        }
    };
    for f in tail.iter().filter(|f| sku.is_none_or(|s| s == f.sku)) {
        add(f.at, &|b| {
            b.received += f.received;
            b.released += f.released;
            b.shipped += f.shipped;
            b.adjusted += f.adjusted;
            b.reserved_delta += f.reserved_delta;
        });
        if let Some(placed_at) = f.placed_at.filter(|_| f.sold != 0) {
            add(placed_at, &|b| b.sold += f.sold);
        }
    }
    Ok(series
        .into_values()
        .filter(|b| [b.received, b.sold, b.released, b.shipped, b.adjusted, b.reserved_delta].iter().any(|n| *n != 0))
        .collect())
}

pub fn bucket_json(b: &rstore::Bucket) -> Value {
    json!({
        "bucket_start": store::timestamp(&b.start),
        "received": b.received,
        "sold": b.sold,
        "released": b.released,
        "shipped": b.shipped,
        "adjusted": b.adjusted,
        "reserved_delta": b.reserved_delta,
    })
}

pub const RESERVATION_COLUMNS: &[&str] =
    &["open_orders", "units", "oldest_at", "age_p50_seconds", "age_p90_seconds", "expiring_within_5m"];

/// Reservations held now, read from the orders that hold them.
pub async fn reservations(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Value, sqlx::Error> {
    let r = rstore::reservations(conn, now).await?;
    Ok(json!({
        "open_orders": r.open_orders,
        "units": r.units,
        "oldest_at": r.oldest_at.as_ref().map(store::timestamp),
        "age_p50_seconds": r.age_p50_seconds.map(|s| s.max(0.0).floor() as i64),
        "age_p90_seconds": r.age_p90_seconds.map(|s| s.max(0.0).floor() as i64),
        "expiring_within_5m": r.expiring_within_5m,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, revenue: i64) -> TopItem {
        TopItem { sku: sku.into(), name: String::new(), units: 1, revenue, abc: '?' }
    }

    #[test]
    fn abc_gives_a_to_the_skus_that_make_the_first_80_percent() {
        let mut items = vec![item("a", 50), item("b", 30), item("c", 10), item("d", 6), item("e", 4)];
        classify(&mut items);
        let classes: String = items.iter().map(|i| i.abc).collect();
        // before: 0, 50, 80, 90, 96 of 100.
        assert_eq!(classes, "AABBC");
    }

    #[test]
    fn windows_start_at_the_top_of_the_hour_and_refuse_more_than_366_days() {
        let now = "2026-03-10T12:34:56Z".parse::<DateTime<Utc>>().unwrap();
        let w = Window::parse(Some("7d"), now).unwrap();
        assert_eq!(w.start, "2026-03-03T12:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(w.day_start, "2026-03-04T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(w.days, 7.0);
        assert!(Window::parse(Some("366d"), now).is_ok());
        assert!(Window::parse(Some("367d"), now).is_err());
        assert!(Window::parse(Some("0d"), now).is_err());
        assert!(Window::parse(Some("7x"), now).is_err());
    }

    #[test]
    fn stock_cursors_round_trip_and_order_after_their_item() {
        let c = StockCursor { key: Some(1.5), sku: "A-1".into() };
        assert_eq!(StockCursor::parse(&c.encode()), Some(c));
        let c = StockCursor { key: None, sku: "B".into() };
        assert_eq!(StockCursor::parse(&c.encode()), Some(c));
        assert_eq!(StockCursor::parse("nonsense"), None);
        assert_eq!(compare(StockSort::DaysOfCover, (None, "a"), (Some(3.0), "b")), Ordering::Greater);
        assert_eq!(compare(StockSort::UnitsSold, (Some(5.0), "b"), (Some(3.0), "a")), Ordering::Less);
    }
}
