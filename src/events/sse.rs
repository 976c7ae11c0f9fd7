//! Server-sent event streams (WHATWG): the wire format and the feed of each client.
//!
//! Each client gets a task that writes frames into a small bounded channel, which the HTTP
//! response drains: a slow client's memory is that channel plus its place in the hub's
//! shared broadcast buffer, never a queue of its own that grows. Every feed subscribes to
//! the hub *before* it reads its backlog from the log, and skips what it already sent by
//! position, so nothing falls between the backlog and the live events, and nothing comes twice.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::hub::{ClientSlot, Event, Hub, PublicState};
use crate::store::events::{self, Filter};

/// Tells the browser how long to wait before reconnecting.
const RETRY: &str = "retry: 2000\n\n";
/// A comment line at least this often, so proxies and clients know the stream is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
const PAGE: i64 = 500;

type Frames = mpsc::Sender<Bytes>;

/// The response body of a stream: frames from the client's feed task, until it ends.
pub fn body(mut frames: mpsc::Receiver<Bytes>) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    futures_util::stream::poll_fn(move |cx: &mut Context<'_>| match frames.poll_recv(cx) {
        Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(b))),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
}

fn reset_frame(id: i64) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: reset\ndata: {{\"id\":{id}}}\n\n"))
}

/// Sends a frame; false when the client has gone.
async fn send(out: &Frames, hub: &Hub, frame: Bytes, at: Option<chrono::DateTime<chrono::Utc>>) -> bool {
    if out.send(frame).await.is_err() {
        return false;
    }
    if let Some(at) = at {
        let lag = (chrono::Utc::now() - at).to_std().unwrap_or_default();
        hub.metrics().event_sent(lag);
    }
    true
}

/// The admin stream: every matching event after `resume` (or, without one, after what is
/// committed now), in position order. A client that falls the hub's backlog behind is closed;
/// it resumes with `Last-Event-ID`.
pub fn admin(hub: Arc<Hub>, slot: ClientSlot, filter: Filter, resume: Option<i64>) -> mpsc::Receiver<Bytes> {
    let (out, frames) = mpsc::channel(16);
    tokio::spawn(async move {
        let _slot = slot;
        if let Err(e) = admin_feed(&hub, &out, &filter, resume).await {
            tracing::warn!(error = %e, "admin event stream ended by a database error");
        }
    });
    frames
}

async fn admin_feed(hub: &Arc<Hub>, out: &Frames, filter: &Filter, resume: Option<i64>) -> Result<(), sqlx::Error> {
    let mut live = hub.subscribe();
    let mut stop = hub.shutting_down();
    hub.ready().await;
    if !send(out, hub, Bytes::from_static(RETRY.as_bytes()), None).await {
        return Ok(());
    }
    // The position the client resumed from, unless that was lost already (then it had a reset).
    let mut resumed_from = resume;
    let mut last = match resume {
        None => hub.head(),
        Some(n) => {
            let pruned = {
                let mut conn = hub.pool.acquire().await?;
                events::marks(&mut conn).await?.1
            };
            if n < pruned {
                // Events after n are gone: the client must re-read state, then follow from here.
                let head = hub.head();
                if !send(out, hub, reset_frame(head), None).await {
                    return Ok(());
                }
                resumed_from = None;
                head
            } else {
                n
            }
        }
    };
    if resume.is_some() {
        loop {
            let rows = {
                let mut conn = hub.pool.acquire().await?;
                events::after(&mut conn, last, filter, PAGE).await?
            };
            let n = rows.len() as i64;
            for row in rows {
                last = row.position;
                let event = Event::new(row);
                if !send(out, hub, event.admin_frame(), Some(event.at)).await {
                    return Ok(());
                }
            }
            if n < PAGE {
                break;
            }
        }
        if !lost_before(hub, resumed_from, out).await? {
            return Ok(());
        }
    }
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            got = live.recv() => match got {
                Ok(batch) => {
                    let seen = last;
                    for event in batch.iter().filter(|e| e.position > seen) {
                        last = event.position;
                        if event.matches(filter) {
                            if !send(out, hub, event.admin_frame(), Some(event.at)).await {
                                return Ok(());
                            }
                            heartbeat.reset();
                        }
                    }
                }
                // Too far behind: closing is what the contract promises, and the client's
                // resume reads the rest from the log.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return Ok(()),
            },
            _ = heartbeat.tick() => {
                if !send(out, hub, Bytes::from_static(b": keep-alive\n\n"), None).await {
                    return Ok(());
                }
            }
            _ = out.closed() => return Ok(()),
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Retention runs while a backlog is read: when it deleted events after `resume` meanwhile,
/// some may have been skipped, and the client is told to reset. False when the client left.
async fn lost_before(hub: &Hub, resume: Option<i64>, out: &Frames) -> Result<bool, sqlx::Error> {
    let Some(n) = resume else { return Ok(true) };
    let pruned = {
        let mut conn = hub.pool.acquire().await?;
        events::marks(&mut conn).await?.1
    };
    if n < pruned {
        return Ok(send(out, hub, reset_frame(hub.head()), None).await);
    }
    Ok(true)
}

/// The public stream: the state of each SKU first (or, on resume, the changes after `resume`),
/// then one `stock` event per change. A slow client skips intermediate values and gets the
/// latest, never an out-of-date one last: per SKU, only a newer version (or a new status at
/// the same version, from a threshold edit) is ever sent.
pub fn public(hub: Arc<Hub>, slot: ClientSlot, skus: Vec<String>, resume: Option<i64>) -> mpsc::Receiver<Bytes> {
    let (out, frames) = mpsc::channel(16);
    tokio::spawn(async move {
        let _slot = slot;
        if let Err(e) = public_feed(&hub, &out, skus, resume).await {
            tracing::warn!(error = %e, "public stock stream ended by a database error");
        }
    });
    frames
}

/// What a public client has been sent of each SKU.
struct Shown(HashMap<String, (i64, String)>);

impl Shown {
    /// Whether `state` is news to the client; records it when it is.
    fn is_news(&mut self, state: &PublicState) -> bool {
        match self.0.get(&state.sku) {
            None => return false, // not one of the client's SKUs
            Some((version, status)) if state.version < *version => return false,
            Some((version, status)) if state.version == *version && state.status == *status => return false,
            Some(_) => {}
        }
        self.0.insert(state.sku.clone(), (state.version, state.status.clone()));
        true
    }
}

async fn snapshot(hub: &Hub, skus: &[String]) -> Result<Vec<PublicState>, sqlx::Error> {
    let mut conn = hub.pool.acquire().await?;
    Ok(events::sku_states(&mut conn, skus)
        .await?
        .into_iter()
        .map(|s| PublicState::from_level(s.sku, s.available, s.low_stock_threshold, s.version))
        .collect())
}

async fn public_feed(hub: &Arc<Hub>, out: &Frames, skus: Vec<String>, resume: Option<i64>) -> Result<(), sqlx::Error> {
    let mut live = hub.subscribe();
    let mut stop = hub.shutting_down();
    hub.ready().await;
    if !send(out, hub, Bytes::from_static(RETRY.as_bytes()), None).await {
        return Ok(());
    }
    // Versions start below any real one, so the first state of each SKU is news.
    let mut shown = Shown(skus.iter().map(|s| (s.clone(), (-1, String::new()))).collect());
    let mut last = hub.head();
    let resumable = match resume {
        Some(n) => {
            let mut conn = hub.pool.acquire().await?;
            (n >= events::marks(&mut conn).await?.1).then_some(n)
        }
        None => None,
    };
    match resumable {
        Some(n) => {
            // Every change after n, from the log; states are then compared by version, so
            // the live events that overlap them are not sent twice.
            // Status events too: a threshold edit changes a status without a stock.changed.
            let filter = Filter { families: vec!["stock.".into()], skus: skus.clone(), ..Filter::default() };
            let mut after = n;
            loop {
                let rows = {
                    let mut conn = hub.pool.acquire().await?;
                    events::after(&mut conn, after, &filter, PAGE).await?
                };
                let count = rows.len() as i64;
                for row in rows {
                    after = row.position;
                    let event = Event::new(row);
                    if let Some(state) = event.public() {
                        if shown.is_news(state) && !send(out, hub, state.frame(event.position), Some(event.at)).await {
                            return Ok(());
                        }
                    }
                }
                if count < PAGE {
                    break;
                }
            }
            last = last.max(after);
            if !lost_before(hub, Some(n), out).await? {
                return Ok(());
            }
        }
        None => {
            // The snapshot's id: everything sequenced before the snapshot is read is in it, so a
            // resume from this id replays nothing the snapshot already showed.
            last = {
                let mut conn = hub.pool.acquire().await?;
                last.max(events::marks(&mut conn).await?.0)
            };
            if resume.is_some() && !send(out, hub, reset_frame(last), None).await {
                return Ok(());
            }
            for state in snapshot(hub, &skus).await? {
                if shown.is_news(&state) && !send(out, hub, state.frame(last), None).await {
                    return Ok(());
                }
            }
        }
    }
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            got = live.recv() => match got {
                Ok(batch) => {
                    let seen = last;
                    for event in batch.iter().filter(|e| e.position > seen) {
                        last = event.position;
                        if let Some(state) = event.public() {
                            if shown.is_news(state) {
                                if !send(out, hub, state.frame(event.position), Some(event.at)).await {
                                    return Ok(());
                                }
                                heartbeat.reset();
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Fallen behind: skip to the latest value of each SKU, and let nothing
                    // older than it (still in the buffer) be sent after it.
                    let head = hub.head();
                    last = head;
                    for state in snapshot(hub, &skus).await? {
                        if shown.is_news(&state) && !send(out, hub, state.frame(head), None).await {
                            return Ok(());
                        }
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            _ = heartbeat.tick() => {
                if !send(out, hub, Bytes::from_static(b": keep-alive\n\n"), None).await {
                    return Ok(());
                }
            }
            _ = out.closed() => return Ok(()),
            _ = stop.changed() => return Ok(()),
        }
    }
}
