//! One batch of cart changes: read every cart of the batch in one statement; decide each
//! change in memory; write every line in one statement. First without locks or a transaction,
//! each change written only if its cart is still as read; what that could not make, again
//! under the carts' locks.

use std::{
    collections::HashSet,
    sync::{atomic::Ordering, Arc},
};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Answer, Change};
use crate::{
    cache::CartCache,
    config::Settings,
    error::{is_unreachable, ApiError},
    metrics::Metrics,
    store::{
        carts::{self, CartRead, CartView, ChangingCart, LineWrites, Reading, Source},
        sessions,
    },
};

/// Answers `changes`, one answer each, in order.
///
/// The first round reads the carts without locks and writes in one statement, which makes
/// only the changes whose carts are still as read: two round trips and no transaction, where
/// locking takes four (BEGIN, read, write, COMMIT). The changes it could not make (a cart
/// changed meanwhile, a session's first change, which creates its cart, or a second change of
/// a cart in the batch) go in the rounds that follow, which lock their carts: one that waited
/// for another change is then made on the cart that change left, and cannot meet another
/// again. A cart changed twice in one batch would need its second change decided on the
/// first's result and written over it in the same statement; instead the second waits for the
/// next round, which begins once the first is committed.
///
/// A statement that fails fails the whole round, so when one does, each change is tried again
/// alone: whatever one change does to the database then fails that change only (unless the
/// database is out of reach, which fails them all anyway).
pub(super) async fn run(
    pool: &PgPool,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    carts: &CartCache,
    changes: Vec<Change>,
) -> Vec<Answer> {
    let db = Db { pool, settings, metrics, carts };
    let mut answers: Vec<Option<Answer>> = vec![None; changes.len()];
    let mut pending: Vec<usize> = (0..changes.len()).collect();
    let mut reading = Reading::Unlocked;
    while !pending.is_empty() {
        metrics.cart_change_batches.fetch_add(1, Ordering::Relaxed);
        metrics.cart_changes.fetch_add(pending.len() as u64, Ordering::Relaxed);
        let result = match reading {
            Reading::Unlocked => unlocked(&db, &changes, &pending).await,
            Reading::Locked => locked(&db, &changes, &pending).await,
        };
        pending = match result {
            Ok(round) => {
                for (i, answer) in round.answers {
                    answers[i] = Some(answer);
                }
                round.later
            }
            Err(Failure::BeforeCommit(e)) if pending.len() > 1 && !is_unreachable(&e) => {
                let singles: Vec<[usize; 1]> = pending.iter().map(|&i| [i]).collect();
                let alone = join_all(singles.iter().map(|one| locked(&db, &changes, one))).await;
                for (&i, result) in pending.iter().zip(alone) {
                    answers[i] = Some(match result {
                        Ok(round) => {
                            round.answers.into_iter().next().map_or_else(|| Err(ApiError::internal()), |a| a.1)
                        }
                        Err(failure) => Err(failure.into_error()),
                    });
                }
                Vec::new()
            }
            Err(failure) => {
                let error = failure.into_error();
                for &i in &pending {
                    answers[i] = Some(Err(error.clone()));
                }
                Vec::new()
            }
        };
        if reading == Reading::Unlocked {
            metrics.cart_changes_relocked.fetch_add(pending.len() as u64, Ordering::Relaxed);
            reading = Reading::Locked;
        }
    }
    answers.into_iter().map(|a| a.unwrap_or_else(|| Err(ApiError::internal()))).collect()
}

/// What one round answered, and the changes left for the next.
struct Round {
    answers: Vec<(usize, Answer)>,
    later: Vec<usize>,
}

enum Failure {
    /// Rolled back: nothing of the round was written.
    BeforeCommit(sqlx::Error),
    /// The commit itself failed: its outcome is unknown, so no change may be tried again here
    /// (an add tried twice would add twice); the clients learn it is unknown (503) and retry.
    AtCommit(sqlx::Error),
}

impl Failure {
    fn into_error(self) -> ApiError {
        match self {
            Failure::BeforeCommit(e) | Failure::AtCommit(e) => ApiError::from(e),
        }
    }
}

/// What a round works with.
struct Db<'a> {
    /// Connections that plan the batch statements generically, without JIT (see
    /// `startup::cart_changes_pool`).
    pool: &'a PgPool,
    settings: &'a Settings,
    metrics: &'a Metrics,
    /// Carts this replica answered last: a change of one that is still current needs no
    /// read of its lines.
    carts: &'a CartCache,
}

/// The first round: carts read without locks, and each change written only if its cart is
/// still as read, in one statement that is its own transaction.
async fn unlocked(db: &Db<'_>, changes: &[Change], batch: &[usize]) -> Result<Round, Failure> {
    let mut conn = db.pool.acquire().await.map_err(Failure::BeforeCommit)?;
    let Requests { tokens, skus, known } = requests(db, changes, batch);
    let found = carts::read_for_change(&mut conn, &tokens, &skus, &known, Reading::Unlocked)
        .await
        .map_err(Failure::BeforeCommit)?;
    let decided = decide(db, changes, batch, found, Reading::Unlocked);
    if decided.writes.is_empty() {
        return Ok(decided.round);
    }
    // The statement is its own transaction: an error from the database means it was rolled
    // back; any other (the connection lost) leaves its outcome unknown.
    let written =
        carts::write_changes(&mut conn, &decided.writes, db.settings.session_ttl).await.map_err(|e| match e {
            sqlx::Error::Database(_) => Failure::BeforeCommit(e),
            e => Failure::AtCommit(e),
        })?;
    Ok(decided.settle(&written))
}

/// A round that locks its carts, in one transaction: nothing can change them before it commits.
async fn locked(db: &Db<'_>, changes: &[Change], batch: &[usize]) -> Result<Round, Failure> {
    let mut tx = db.pool.begin().await.map_err(Failure::BeforeCommit)?;
    let Requests { tokens, skus, known } = requests(db, changes, batch);
    let mut found = carts::read_for_change(&mut tx, &tokens, &skus, &known, Reading::Locked)
        .await
        .map_err(Failure::BeforeCommit)?;

    // A session's first change finds no cart row: make it and lock again. So does a change
    // that waited for a guest cart which an attach then took away: the session now names its
    // customer's cart, and the fresh statement finds that. Still nothing: 401.
    let missing: Vec<usize> = (0..batch.len()).filter(|&k| found[k].is_none()).collect();
    if !missing.is_empty() {
        let tokens: Vec<Vec<u8>> = missing.iter().map(|&k| tokens[k].clone()).collect();
        let skus: Vec<String> = missing.iter().map(|&k| skus[k].clone()).collect();
        carts::create_for(&mut tx, &tokens).await.map_err(Failure::BeforeCommit)?;
        let known = vec![None; tokens.len()];
        let again = carts::read_for_change(&mut tx, &tokens, &skus, &known, Reading::Locked)
            .await
            .map_err(Failure::BeforeCommit)?;
        for (&k, cart) in missing.iter().zip(again) {
            found[k] = cart;
        }
    }
    // A change of another round came between the statement's snapshot and the lock: read the
    // cart again, under the lock.
    for (k, cart) in found.iter_mut().enumerate() {
        if let Some(cart) = cart.as_mut().filter(|c| c.read.is_none()) {
            let sku = changes[batch[k]].op.sku();
            cart.read = carts::load_for_change(&mut tx, cart.cart_id, sku).await.map_err(Failure::BeforeCommit)?;
        }
    }

    let decided = decide(db, changes, batch, found, Reading::Locked);
    if decided.writes.is_empty() {
        // Every change was refused: nothing to write or wait for.
        let _ = tx.rollback().await;
        return Ok(decided.round);
    }
    let written =
        carts::write_changes(&mut tx, &decided.writes, db.settings.session_ttl).await.map_err(Failure::BeforeCommit)?;
    // `write_changes` lifted the statement timeout for it (see `store::commit`).
    tx.commit().await.map_err(Failure::AtCommit)?;
    Ok(decided.settle(&written))
}

/// What `read_for_change` is asked for a round's changes.
struct Requests {
    tokens: Vec<Vec<u8>>,
    /// The SKU each change names.
    skus: Vec<String>,
    /// This replica's last copy of each cart (version 0 is a cart not written yet, dated by its
    /// session until its row exists: no copy).
    known: Vec<Option<Arc<CartView>>>,
}

fn requests(db: &Db<'_>, changes: &[Change], batch: &[usize]) -> Requests {
    let tokens: Vec<Vec<u8>> = batch.iter().map(|&i| changes[i].token.0.clone()).collect();
    let skus: Vec<String> = batch.iter().map(|&i| changes[i].op.sku().to_owned()).collect();
    let known = tokens.iter().map(|token| db.carts.last_cart_of(token).filter(|v| v.version > 0)).collect();
    Requests { tokens, skus, known }
}

/// A round's changes decided in memory: the refusals answered, the rest to write.
struct Decided {
    round: Round,
    writes: LineWrites,
    /// The changes to write: each one's index and the cart after it, answered once the write
    /// made it.
    made: Vec<(usize, CartView)>,
}

impl Decided {
    /// Answers the changes `write_changes` made, dated as it wrote them; the others (their
    /// carts changed since they were read) go to the next round.
    fn settle(mut self, written: &[(Uuid, DateTime<Utc>)]) -> Round {
        for (i, mut view) in self.made {
            match written.iter().find(|(id, _)| *id == view.id) {
                Some(&(_, updated_at)) => {
                    view.updated_at = updated_at;
                    self.round.answers.push((i, Ok(view)));
                }
                None => self.round.later.push(i),
            }
        }
        self.round
    }
}

/// Decides each change of `batch` on its cart as found (`found[k]` for `batch[k]`).
fn decide(
    db: &Db<'_>,
    changes: &[Change],
    batch: &[usize],
    found: Vec<Option<ChangingCart>>,
    reading: Reading,
) -> Decided {
    let Db { settings, metrics, carts: cache, .. } = *db;
    let mut decided = Decided {
        round: Round { answers: Vec::with_capacity(batch.len()), later: Vec::new() },
        writes: LineWrites::default(),
        made: Vec::with_capacity(batch.len()),
    };
    let mut changed = HashSet::with_capacity(batch.len());
    for (&i, cart) in batch.iter().zip(found) {
        let change = &changes[i];
        let Some(cart) = cart else {
            match reading {
                // Locked, a missing cart was created: the session is gone.
                Reading::Locked => decided.round.answers.push((i, Err(ApiError::unknown_session()))),
                // Unlocked, the session may only have no cart yet: the locked round creates it.
                Reading::Unlocked => decided.round.later.push(i),
            }
            continue;
        };
        cache.remember_cart_of(&change.token.0, cart.cart_id);
        if !changed.insert(cart.cart_id) {
            decided.round.later.push(i);
            continue;
        }
        let Some(CartRead { cart: mut view, product, recent }) = cart.read else {
            decided.round.answers.push((i, Err(ApiError::internal())));
            continue;
        };
        let source = match cart.source {
            Source::Cached => &metrics.carts_cached,
            Source::CaughtUp => &metrics.carts_caught_up,
            Source::Whole => &metrics.carts_read_whole,
        };
        source.fetch_add(1, Ordering::Relaxed);
        if change.expected.as_ref().is_some_and(|e| !e.matches(view.version)) {
            let current = view.to_json(&settings.currency);
            decided.round.answers.push((i, Err(ApiError::version_mismatch(view.version, current))));
            continue;
        }
        let lines = match change.op.apply(&mut view, product.as_ref()) {
            Ok(lines) => lines,
            Err(refused) => {
                decided.round.answers.push((i, Err(refused)));
                continue;
            }
        };
        view.version += 1;
        decided.writes.change(view.id, cart.session_id, cart.version, recent, &lines);
        if sessions::needs_slide(cart.session_expires_at, settings.session_ttl) {
            decided.writes.slide(cart.session_id);
        }
        decided.made.push((i, view));
    }
    decided
}
