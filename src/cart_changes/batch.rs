//! One batch of cart changes: BEGIN; lock and read every cart of the batch in one statement;
//! decide each change in memory; write every line in one statement; COMMIT.

use std::{
    collections::HashSet,
    sync::{atomic::Ordering, Arc},
};

use futures_util::future::join_all;
use sqlx::PgPool;

use super::{Answer, Change};
use crate::{
    cache::CartCache,
    config::Settings,
    error::{is_unreachable, ApiError},
    metrics::Metrics,
    store::{
        carts::{self, CartLine, CartRead, CartView, LineWrites, Source},
        sessions,
    },
};

/// Answers `changes`, one answer each, in order.
///
/// A cart changed twice in one batch would need its second change decided on the first's
/// result and written over it in the same statement; instead the second waits for the next
/// round, which begins once the first is committed. A statement that fails fails the whole
/// transaction, so when one does, each change is tried again alone: whatever one change does
/// to the database then fails that change only (unless the database is out of reach, which
/// fails them all anyway).
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
    while !pending.is_empty() {
        metrics.cart_change_batches.fetch_add(1, Ordering::Relaxed);
        metrics.cart_changes.fetch_add(pending.len() as u64, Ordering::Relaxed);
        pending = match transact(&db, &changes, &pending).await {
            Ok(round) => {
                for (i, answer) in round.answers {
                    answers[i] = Some(answer);
                }
                round.later
            }
            Err(Failure::BeforeCommit(e)) if pending.len() > 1 && !is_unreachable(&e) => {
                let singles: Vec<[usize; 1]> = pending.iter().map(|&i| [i]).collect();
                let alone = join_all(singles.iter().map(|one| transact(&db, &changes, one))).await;
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
        }
    }
    answers.into_iter().map(|a| a.unwrap_or_else(|| Err(ApiError::internal()))).collect()
}

/// What one transaction answered, and the changes left for the next (carts it already changed).
struct Round {
    answers: Vec<(usize, Answer)>,
    later: Vec<usize>,
}

enum Failure {
    /// Rolled back: nothing of the batch was written.
    BeforeCommit(sqlx::Error),
    /// The COMMIT itself failed: its outcome is unknown, so no change may be tried again here
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

/// What a transaction works with.
struct Db<'a> {
    pool: &'a PgPool,
    settings: &'a Settings,
    metrics: &'a Metrics,
    /// Carts this replica answered last: a change of one that is still current needs no
    /// read of its lines.
    carts: &'a CartCache,
}

/// One transaction for the changes `batch` (indexes into `changes`).
async fn transact(db: &Db<'_>, changes: &[Change], batch: &[usize]) -> Result<Round, Failure> {
    let Db { pool, settings, metrics, carts: cache } = *db;
    // A batch's statements take arrays whose length varies from batch to batch. PostgreSQL
    // would plan them afresh for each batch (custom plans), which costs more than running
    // them; the generic plan (index lookups per element) is right for every length here.
    // A generic plan guesses its arrays' lengths, and where the tables have no statistics
    // yet (a new database) its cost can pass `jit_above_cost`: compiling the statement then
    // took 55 ms of an 80 ms change. No statement here runs long enough to gain from it.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL jit = off")
        .await
        .map_err(Failure::BeforeCommit)?;
    let tokens: Vec<Vec<u8>> = batch.iter().map(|&i| changes[i].token.0.clone()).collect();
    let skus: Vec<String> = batch.iter().map(|&i| changes[i].op.sku().to_owned()).collect();
    // Version 0 is a cart not written yet, dated by its session until its row exists.
    let known: Vec<Option<Arc<CartView>>> = tokens
        .iter()
        .map(|token| cache.last_cart_of(token).map(|c| c.view.clone()).filter(|v| v.version > 0))
        .collect();
    let mut locked = carts::lock_many(&mut tx, &tokens, &skus, &known).await.map_err(Failure::BeforeCommit)?;

    // A session's first change finds no cart row: make it and lock again. So does a change
    // that waited for a guest cart which an attach then took away: the session now names its
    // customer's cart, and the fresh statement finds that. Still nothing: 401.
    let missing: Vec<usize> = (0..batch.len()).filter(|&k| locked.carts[k].is_none()).collect();
    if !missing.is_empty() {
        let tokens: Vec<Vec<u8>> = missing.iter().map(|&k| tokens[k].clone()).collect();
        let skus: Vec<String> = missing.iter().map(|&k| skus[k].clone()).collect();
        carts::create_for(&mut tx, &tokens).await.map_err(Failure::BeforeCommit)?;
        let known = vec![None; tokens.len()];
        let again = carts::lock_many(&mut tx, &tokens, &skus, &known).await.map_err(Failure::BeforeCommit)?;
        for (&k, cart) in missing.iter().zip(again.carts) {
            locked.carts[k] = cart;
        }
    }

    let mut round = Round { answers: Vec::with_capacity(batch.len()), later: Vec::new() };
    let mut changed = HashSet::with_capacity(batch.len());
    let mut writes = LineWrites::default();
    for (k, &i) in batch.iter().enumerate() {
        let change = &changes[i];
        let Some(cart) = locked.carts[k].take() else {
            round.answers.push((i, Err(ApiError::unknown_session())));
            continue;
        };
        cache.remember_cart_of(&change.token.0, cart.cart_id);
        if !changed.insert(cart.cart_id) {
            round.later.push(i);
            continue;
        }
        let source = match cart.source {
            Source::Cached => &metrics.carts_cached,
            Source::CaughtUp => &metrics.carts_caught_up,
            Source::Whole => &metrics.carts_read_whole,
        };
        source.fetch_add(1, Ordering::Relaxed);
        let CartRead { cart: mut view, product, recent } = match cart.read {
            Some(read) => read,
            // A change of another batch came between the statement's snapshot and the lock:
            // read the cart again, under the lock.
            None => match carts::load_for_change(&mut tx, cart.cart_id, change.op.sku())
                .await
                .map_err(Failure::BeforeCommit)?
            {
                Some(read) => read,
                None => {
                    round.answers.push((i, Err(ApiError::internal())));
                    continue;
                }
            },
        };
        if change.expected.as_ref().is_some_and(|e| !e.matches(view.version)) {
            let current = view.to_json(&settings.currency);
            round.answers.push((i, Err(ApiError::version_mismatch(view.version, current))));
            continue;
        }
        let before = view.lines.clone();
        if let Err(refused) = change.op.apply(&mut view, product.as_ref()) {
            round.answers.push((i, Err(refused)));
            continue;
        }
        view.version += 1;
        view.updated_at = locked.now;
        writes.change(view.id, cart.version, recent, &net_lines(&before, &view.lines));
        if sessions::needs_slide(cart.session_expires_at, settings.session_ttl) {
            writes.slide(cart.session_id);
        }
        round.answers.push((i, Ok(view)));
    }

    if writes.is_empty() {
        // Every change was refused: nothing to write or wait for.
        let _ = tx.rollback().await;
        return Ok(round);
    }
    carts::write_changes(&mut tx, &writes, settings.session_ttl).await.map_err(Failure::BeforeCommit)?;
    // `write_changes` lifted the statement timeout for it (see `store::commit`).
    tx.commit().await.map_err(Failure::AtCommit)?;
    Ok(round)
}

/// The line writes that take a cart's lines from `before` to `after`: each changed or new
/// line set, each dropped line set to 0 (removed).
fn net_lines(before: &[CartLine], after: &[CartLine]) -> Vec<(String, i32)> {
    let set = after
        .iter()
        .filter(|line| !before.iter().any(|b| b.sku == line.sku && b.quantity == line.quantity))
        .map(|line| (line.sku.clone(), line.quantity));
    let removed =
        before.iter().filter(|line| !after.iter().any(|a| a.sku == line.sku)).map(|line| (line.sku.clone(), 0));
    set.chain(removed).collect()
}
