//! One batch of cart changes: read every cart of the batch in one statement; decide each
//! change in memory; write every line in one statement. First without locks or a transaction,
//! each change written only if its cart is still as read; what that could not make, again
//! under the carts' locks.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Answer, Change};
use crate::{
    cache::{CartCache, TokenHint},
    config::Settings,
    error::{is_unreachable, ApiError},
    metrics::Metrics,
    store::{
        carts::{self, Assumed, CartRead, CartView, ChangingCart, LineProduct, LineWrites, Reading, Source},
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
    copies: &CopyOdds,
    changes: Vec<Change>,
) -> Vec<Answer> {
    let db = Db { pool, settings, metrics, carts, copies };
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

/// How often this replica's copies of the carts its changes find are current, in thousandths,
/// over the last few dozen batches: each batch moves it an eighth of the way to its own share.
///
/// A change decided on a copy skips the read, and one decided on a stale copy fails its write
/// and costs a locked round (four round trips) instead. Whether copies are current is a matter
/// of routing, not of the cart: every change of a cart through this replica keeps its copy
/// current, and behind a round-robin balancer with two replicas about half of them are stale.
/// So the first round decides on copies only while this says they pay.
pub(super) struct CopyOdds(AtomicU32);

impl CopyOdds {
    /// Starts as if copies were never current: the first batches read, and learn otherwise.
    pub(super) fn new() -> CopyOdds {
        CopyOdds(AtomicU32::new(0))
    }

    /// Decide on copies when at least nine in ten were current.
    fn worth_it(&self) -> bool {
        self.0.load(Ordering::Relaxed) >= 900
    }

    /// A batch's first round found `current` of the `with_copy` copies it met current.
    fn learn(&self, current: usize, with_copy: usize) {
        if let Some(share) = (current * 1000).checked_div(with_copy) {
            let odds = self.0.load(Ordering::Relaxed);
            // Only the batch loop writes it (`WRITERS` is 1), so load and store do not race.
            self.0.store((odds * 7 + share as u32) / 8, Ordering::Relaxed);
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
    /// read of its lines, and while `copies` says they are current, no read at all.
    carts: &'a CartCache,
    copies: &'a CopyOdds,
}

/// The first round: carts read without locks, and each change written only if its cart is
/// still as read, in one statement that is its own transaction. While this replica's copies
/// are current (`CopyOdds`), the changes that can be are decided on them instead, unread: with
/// every change so decided, the round is the write alone.
async fn unlocked(db: &Db<'_>, changes: &[Change], batch: &[usize]) -> Result<Round, Failure> {
    let mut conn = db.pool.acquire().await.map_err(Failure::BeforeCommit)?;
    let mut decided = Decided::new(batch.len());
    let to_read = if db.copies.worth_it() { on_copies(db, changes, batch, &mut decided) } else { batch.to_vec() };
    let mut current = 0;
    let mut with_copy = 0;
    if !to_read.is_empty() {
        let Requests { tokens, skus, known } = requests(db, changes, &to_read);
        let found = carts::read_for_change(&mut conn, &tokens, &skus, &known, Reading::Unlocked)
            .await
            .map_err(Failure::BeforeCommit)?;
        for (copy, cart) in known.iter().zip(&found) {
            if copy.is_some() {
                with_copy += 1;
                current += usize::from(cart.as_ref().is_some_and(|c| c.source == Source::Cached));
            }
        }
        decide(db, changes, &to_read, found, Reading::Unlocked, &mut decided);
    }
    let on_copy = std::mem::take(&mut decided.on_copy);
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
    let round = decided.settle(&written);
    let missed = round.later.iter().filter(|i| on_copy.contains(i)).count();
    db.metrics.carts_on_copy.fetch_add((on_copy.len() - missed) as u64, Ordering::Relaxed);
    db.copies.learn(current + on_copy.len() - missed, with_copy + on_copy.len());
    Ok(round)
}

/// Decides the changes of `batch` that it can on this replica's copies of their carts, into
/// `decided`, each requiring of its write what it assumed (`Assumed::Copy`); returns the
/// others, to be read. A change is decided on a copy only when the copy is the one its token's
/// last change here left (so its history is known), its session is not yet due to slide, the
/// product it names was read at the copy's catalog revision, and the change is made: a refusal
/// (412, 409, 422, 404) is never answered from a copy, which may be stale, but from a read.
fn on_copies(db: &Db<'_>, changes: &[Change], batch: &[usize], decided: &mut Decided) -> Vec<usize> {
    let mut to_read = Vec::new();
    for &i in batch {
        let change = &changes[i];
        let Some((hint, copy)) = db.carts.hint_of(&change.token.0) else {
            to_read.push(i);
            continue;
        };
        let Some(recent) = copy.recent.as_deref().filter(|_| copy.version > 0) else {
            to_read.push(i);
            continue;
        };
        let sku = change.op.sku();
        // Decided as if any quantity were available: the write requires the stock it needs.
        let product = match sku {
            "" => None,
            sku => db.carts.product(sku, copy.catalog_revision).map(|p| LineProduct { available: i64::MAX, ..p }),
        };
        if sessions::needs_slide(hint.session_expires_at, db.settings.session_ttl)
            || change.expected.as_ref().is_some_and(|e| !e.matches(copy.version))
            || decided.changed.contains(&copy.id)
            || (!sku.is_empty() && product.is_none())
        {
            to_read.push(i);
            continue;
        }
        let mut view = CartView::clone(&copy);
        let Ok(lines) = change.op.apply(&mut view, product.as_ref()) else {
            to_read.push(i);
            continue;
        };
        view.version += 1;
        let stock = view.quantity_of(sku).map(|quantity| (sku.to_owned(), i64::from(quantity)));
        let assumed = Assumed::Copy { catalog_revision: copy.catalog_revision, stock };
        decided.writes.change(view.id, hint.session_id, copy.version, recent.clone(), &lines, assumed);
        decided.changed.insert(copy.id);
        decided.on_copy.push(i);
        decided.made.push((i, view));
    }
    to_read
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

    let mut decided = Decided::new(batch.len());
    decide(db, changes, batch, found, Reading::Locked, &mut decided);
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
    /// The changes to write, in the order of `writes`: each one's index and the cart after it,
    /// answered once the write made it.
    made: Vec<(usize, CartView)>,
    /// The carts changed: a batch changes a cart once (see `run`).
    changed: HashSet<Uuid>,
    /// The changes of `made` decided on copies (`on_copies`).
    on_copy: Vec<usize>,
}

impl Decided {
    fn new(changes: usize) -> Decided {
        Decided {
            round: Round { answers: Vec::with_capacity(changes), later: Vec::new() },
            writes: LineWrites::default(),
            made: Vec::with_capacity(changes),
            changed: HashSet::with_capacity(changes),
            on_copy: Vec::new(),
        }
    }

    /// Answers the changes `write_changes` made, dated as it wrote them, each cart with the
    /// history it now has (never before the write: a change that failed would leave its history
    /// beside another replica's cart at the same version); the others (their carts changed since
    /// they were read) go to the next round.
    fn settle(mut self, written: &[(Uuid, DateTime<Utc>)]) -> Round {
        for ((i, mut view), recent) in self.made.into_iter().zip(self.writes.into_histories()) {
            match written.iter().find(|(id, _)| *id == view.id) {
                Some(&(_, updated_at)) => {
                    view.updated_at = updated_at;
                    view.recent = Some(Arc::new(recent));
                    self.round.answers.push((i, Ok(view)));
                }
                None => self.round.later.push(i),
            }
        }
        self.round
    }
}

/// Decides each change of `batch` on its cart as found (`found[k]` for `batch[k]`), into `decided`.
fn decide(
    db: &Db<'_>,
    changes: &[Change],
    batch: &[usize],
    found: Vec<Option<ChangingCart>>,
    reading: Reading,
    decided: &mut Decided,
) {
    let Db { settings, metrics, carts: cache, .. } = *db;
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
        let hint = TokenHint {
            cart_id: cart.cart_id,
            session_id: cart.session_id,
            session_expires_at: cart.session_expires_at,
        };
        cache.remember(&change.token.0, hint);
        if !decided.changed.insert(cart.cart_id) {
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
        // Kept for changes decided on copies, while they are (`on_copies`).
        if let Some(product) = product.as_ref().filter(|_| db.copies.worth_it()) {
            cache.remember_product(change.op.sku(), view.catalog_revision, product);
        }
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
        decided.writes.change(view.id, cart.session_id, cart.version, recent, &lines, Assumed::Nothing);
        if sessions::needs_slide(cart.session_expires_at, settings.session_ttl) {
            decided.writes.slide(cart.session_id);
        }
        decided.made.push((i, view));
    }
}
