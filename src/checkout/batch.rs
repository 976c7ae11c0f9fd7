//! What one batch of checkouts does: the sessions are authenticated (and slid) in one read, then
//! ONE transaction claims the idempotency keys, places every new checkout's order (each all or
//! nothing: `stock::apply_groups` decides per order in memory, under the row locks, with no
//! savepoints), stores the answers of those that placed none, reads the orders that replays
//! name, and commits once.
//!
//! Each distinct checkout of the batch is one `Pending`, filled in stage by stage; the answers
//! are then read off it in request order.

use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    config::Settings,
    domain::TokenHash,
    problem::{shortages, Problem, Shortage},
    store::{
        idempotency::{self, Claim, Stored},
        orders::{self, PlaceRequest, Placement, Status, Viewer},
        sessions::{self, SessionOfToken},
    },
};

/// A checkout as the handler hands it over: the session token (looked up with the rest of
/// the batch, saving each checkout its own session read) and the idempotency key.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub token: TokenHash,
    pub key: String,
}

/// The answer of a checkout: what the first request with its key got, or gets now.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    /// The session's cart, whose cached copy the checkout made stale.
    pub cart_id: Option<Uuid>,
}

/// What a placed order is answered with (201 Created). The other answers are problems, whose
/// status comes with them: the answer is stored as status and body because a replay must
/// return exactly the first one, on any replica, even after a deployment.
pub const PLACED: u16 = 201;

/// One distinct (session, key) of the batch. The same pair sent twice in one batch is one
/// `Pending`: the first request does the work, the others replay it.
struct Pending<'a> {
    session: &'a SessionOfToken,
    key: &'a str,
    /// Chosen before the key is claimed, so the key is written once, already naming the order.
    /// Time-ordered ids keep the orders' indexes appending at their right edge.
    order_id: Uuid,
    /// What claiming the key found (stage 2).
    claim: Claim,
    /// Decided by placing the order (stage 3) or by an earlier request with this key (stage 4);
    /// still `None` when another checkout with the key is running.
    decided: Option<Decided>,
}

struct Decided {
    status: u16,
    body: Value,
    /// The answer an earlier request with this key got, not one placed by this batch.
    earlier: bool,
}

/// Places a batch of checkouts in one transaction; answers in request order.
pub async fn place_batch(
    conn: &mut PgConnection,
    settings: &Settings,
    requests: &[CheckoutRequest],
) -> Result<Vec<Answer>, sqlx::Error> {
    // Stage 0, before the transaction: checking out is activity, so the sessions due to slide
    // slide here, whatever the checkout's outcome.
    let hashes: Vec<Vec<u8>> = requests.iter().map(|r| r.token.0.clone()).collect();
    let found = sessions::authenticate_many(&mut *conn, &hashes, settings.session_ttl).await?;
    let (mut pending, slots) = group(requests, &found);

    let mut tx = crate::store::begin_untimed(conn).await?;
    claim(&mut tx, &mut pending).await?;
    place(&mut tx, &mut pending, settings).await?;
    replay(&mut tx, &mut pending).await?;
    tx.commit().await?;

    Ok(answers(&pending, &slots))
}

/// Stage 1: one `Pending` per distinct (session, key); each request's slot among them, `None`
/// for a request whose session is unknown, expired or revoked.
fn group<'a>(requests: &'a [CheckoutRequest], found: &'a [SessionOfToken]) -> (Vec<Pending<'a>>, Vec<Option<usize>>) {
    let mut pending: Vec<Pending<'a>> = Vec::new();
    let slots = requests
        .iter()
        .map(|r| {
            let session = found.iter().find(|s| s.token_hash == r.token.0)?;
            let same = |p: &Pending<'_>| p.session.id == session.id && p.key == r.key;
            Some(pending.iter().position(same).unwrap_or_else(|| {
                pending.push(Pending {
                    session,
                    key: &r.key,
                    order_id: Uuid::now_v7(),
                    claim: Claim::InProgress,
                    decided: None,
                });
                pending.len() - 1
            }))
        })
        .collect();
    (pending, slots)
}

/// Stage 2: every key is claimed at once, already naming its planned order.
async fn claim(tx: &mut PgConnection, pending: &mut [Pending<'_>]) -> Result<(), sqlx::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let keys: Vec<(Uuid, String)> = pending.iter().map(|p| (p.session.id, p.key.to_owned())).collect();
    let planned: Vec<Uuid> = pending.iter().map(|p| p.order_id).collect();
    let claims = idempotency::claim_many(tx, &keys, &planned).await?;
    for (p, claim) in pending.iter_mut().zip(claims) {
        p.claim = claim;
    }
    Ok(())
}

/// Stage 3: the checkouts that own their key place their orders; the keys of those that placed
/// none are rewritten with the problem they got (a placed order's key already names it).
async fn place(tx: &mut PgConnection, pending: &mut [Pending<'_>], settings: &Settings) -> Result<(), sqlx::Error> {
    let mut new: Vec<&mut Pending<'_>> = pending.iter_mut().filter(|p| matches!(p.claim, Claim::New)).collect();
    if new.is_empty() {
        return Ok(());
    }
    let requests: Vec<PlaceRequest> = new
        .iter()
        .map(|p| PlaceRequest {
            order_id: p.order_id,
            session_id: p.session.id,
            customer_id: p.session.customer_id.clone(),
            cart_id: p.session.cart_id,
        })
        .collect();
    let placements = orders::place_many(&mut *tx, &requests, &settings.currency, settings.payment_timeout).await?;
    let mut records = Vec::new();
    for (p, placement) in new.iter_mut().zip(&placements) {
        let (status, body) = render(placement);
        if !matches!(placement, Placement::Placed(_)) {
            records.push((p.session.id, p.key.to_owned(), status, Stored::Body(body.clone())));
        }
        p.decided = Some(Decided { status, body, earlier: false });
    }
    if !records.is_empty() {
        idempotency::record_many(tx, &records).await?;
    }
    Ok(())
}

/// Stage 4: keys used before answer what they answered then; a placed order is rendered from
/// its row as it was placed (its first status).
async fn replay(tx: &mut PgConnection, pending: &mut [Pending<'_>]) -> Result<(), sqlx::Error> {
    for p in pending.iter_mut() {
        let Claim::Replay { status, answer } = &p.claim else { continue };
        let body = match answer {
            Stored::Body(body) => body.clone(),
            Stored::Order(id) => match orders::find(&mut *tx, *id, &Viewer::Admin).await? {
                Some(mut order) => {
                    order.status = Status::AwaitingPayment;
                    order.to_json()
                }
                None => continue,
            },
        };
        p.decided = Some(Decided { status: *status, body, earlier: true });
    }
    Ok(())
}

/// Stage 5, after the commit: one answer per request, in request order.
fn answers(pending: &[Pending<'_>], slots: &[Option<usize>]) -> Vec<Answer> {
    let mut answered = vec![false; pending.len()];
    slots
        .iter()
        .map(|slot| {
            let Some(i) = *slot else {
                let (status, body) =
                    problem(Problem::Unauthorized, "unknown, expired or revoked session token", &Map::new());
                return Answer { status, body, replayed: false, cart_id: None };
            };
            let first = !std::mem::replace(&mut answered[i], true);
            let cart_id = Some(pending[i].session.cart_id);
            match &pending[i].decided {
                Some(d) => Answer { status: d.status, body: d.body.clone(), replayed: d.earlier || !first, cart_id },
                None => {
                    let (status, body) = problem(
                        Problem::IdempotencyInProgress,
                        "a checkout with this Idempotency-Key is still running; retry",
                        &Map::new(),
                    );
                    Answer { status, body, replayed: false, cart_id }
                }
            }
        })
        .collect()
}

fn problem(problem: Problem, detail: &str, extensions: &Map<String, Value>) -> (u16, Value) {
    (problem.status(), problem.document(detail, extensions))
}

fn render(placement: &Placement) -> (u16, Value) {
    match placement {
        Placement::Placed(order) => (PLACED, order.to_json()),
        Placement::EmptyCart => problem(Problem::EmptyCart, "the cart is empty", &Map::new()),
        Placement::Short(list) => {
            let list: Vec<Shortage<'_>> = list
                .iter()
                .map(|s| Shortage { sku: s.sku.as_str(), requested: s.requested, available: s.available })
                .collect();
            problem(
                Problem::InsufficientStock,
                "not enough stock for every line; nothing was reserved",
                &shortages(&list),
            )
        }
    }
}
