//! One event reader per replica, fanning out to every stream client of that replica.
//!
//! Ten thousand clients must not mean ten thousand queries per event: the hub reads each
//! event from PostgreSQL once and broadcasts it; each client filters what it receives. And
//! no client must mean no read of the events at all: the hub then only moves its head (`read`).
//!
//! Waking up: writers do not notify (see migration V5: a notifying commit takes a
//! database-wide lock). Every `PROBE` the hub sequences whatever committed events wait for a
//! position (one statement; at rest, after a probe that found nothing, a cheaper read asks
//! first whether anything waits); the replica that sequenced notifies, and every other hub
//! listening (LISTEN on a connection of its own, not from the request pool) reads the new
//! events. While that connection is down it reconnects
//! with backoff and polls the log meanwhile. Notifications only say "look": events are always
//! read from the log, so a lost notification delays an event and never loses it.
//!
//! One sequencer at a time under load: a hub that hears another replica sequence, after its
//! own last turn, sits out its probes for `FOLLOW`. Two replicas sequencing every tick would
//! make the second wait for the first's row locks each time and number nothing; the follower
//! takes over within `FOLLOW` of the sequencer going quiet (or away).

use std::{
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use actix_web::web::Bytes;
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgListener, PgPoolOptions},
    PgPool,
};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    metrics::Metrics,
    store::{
        self,
        events::{self, Filter, StoredEvent},
        stock::StockStatus,
    },
};

/// How many batches (reads of up to `PAGE` events) a slow client may fall behind before the
/// admin stream closes it (it resumes with `Last-Event-ID`) and the public stream skips to
/// the latest values.
const BACKLOG: usize = 1024;
/// How often the hub sequences (at rest, one probe of an empty index range). It bounds the
/// latency a commit waits before it is sequenced: at 20 ms the p99 from commit to a client
/// on another replica was 105 ms under the mixed load (target 100); 10 ms costs 100
/// statements a second on the sequencing replica.
const PROBE: Duration = Duration::from_millis(10);
/// How long a hub leaves sequencing to another replica it heard sequence: three of its ticks,
/// so a lost or late notification does not hand the turn back and forth.
const FOLLOW: Duration = Duration::from_millis(30);
/// Reads without a notification, while LISTEN works (a safety net) and while it does not.
const READ_LISTENING: Duration = Duration::from_secs(1);
const READ_DISCONNECTED: Duration = Duration::from_millis(200);
const PAGE: i64 = 1000;
/// `Hub::unsent_from` when the broadcast owes nothing.
const NOTHING_OWED: i64 = i64::MAX;

/// Events read together, in position order, shared by every client of the replica.
pub type Batch = Arc<Vec<Event>>;

/// An event as every stream writes it, rendered once for all clients.
///
/// Every replica reads every event, and on most replicas most events go to no client: the
/// data stays the text PostgreSQL sent until something needs it. Parsing each event's data
/// into a JSON value on every replica was most of what a replica's hub cost under a checkout
/// load (four events an order, each a map of a dozen fields, allocated and dropped).
#[derive(Debug)]
pub struct Event {
    pub position: i64,
    pub topic: String,
    /// The data as JSON text; the admin stream embeds it as it is.
    text: String,
    /// The data parsed, for a client filtering by SKU.
    data: OnceLock<Value>,
    /// `id:`, `event:`, `data:` of the admin stream, rendered by the first admin client that
    /// sends the event, once for all of them (a replica with no admin stream renders none).
    admin_frame: OnceLock<Bytes>,
    /// What the public stream shows of it (stock events only), read out by its first client.
    public: OnceLock<Option<PublicState>>,
    /// When the hub read it, and when it was written (for the lag metric).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A SKU's state on the public stream.
#[derive(Debug, Clone)]
pub struct PublicState {
    pub sku: String,
    pub available: i64,
    pub status: String,
    pub version: i64,
}

impl PublicState {
    pub fn frame(&self, id: i64) -> Bytes {
        let data =
            json!({ "sku": self.sku, "available": self.available, "status": self.status, "version": self.version });
        Bytes::from(format!("id: {id}\nevent: stock\ndata: {data}\n\n"))
    }

    pub fn from_level(sku: String, available: i64, low_stock_threshold: i64, version: i64) -> PublicState {
        PublicState {
            sku,
            available,
            status: StockStatus::of(available, low_stock_threshold).as_str().to_owned(),
            version,
        }
    }
}

/// The event resource: `{"id", "type", "at", "data"}`, as the event list answers it.
pub fn resource(e: &StoredEvent) -> Value {
    events::parse_payload(&resource_text(e.position, &e.topic, &e.at, &e.payload))
}

/// The event resource as JSON text, around the data's text as PostgreSQL printed it: the one
/// place its shape is written, for the list (parsed) and the admin stream (as it is).
fn resource_text(id: i64, topic: &str, at: &chrono::DateTime<chrono::Utc>, data: &str) -> String {
    let at = Value::from(store::timestamp(at));
    let topic = Value::from(topic);
    format!("{{\"at\":{at},\"data\":{data},\"id\":{id},\"type\":{topic}}}")
}

impl Event {
    pub fn new(e: StoredEvent) -> Event {
        Event {
            position: e.position,
            topic: e.topic,
            text: e.payload,
            data: OnceLock::new(),
            admin_frame: OnceLock::new(),
            public: OnceLock::new(),
            at: e.at,
        }
    }

    /// Whether an admin stream with `filter` sends this event; the data is parsed only for a
    /// filter by SKU.
    pub fn matches(&self, filter: &Filter) -> bool {
        filter.matches_topic(&self.topic)
            && (!filter.looks_at_data()
                || filter.matches_data(self.data.get_or_init(|| events::parse_payload(&self.text))))
    }

    /// The admin stream's frame: the event resource, its data embedded as PostgreSQL sent it.
    pub fn admin_frame(&self) -> Bytes {
        self.admin_frame
            .get_or_init(|| {
                let resource = resource_text(self.position, &self.topic, &self.at, &self.text);
                Bytes::from(format!("id: {}\nevent: {}\ndata: {resource}\n\n", self.position, self.topic))
            })
            .clone()
    }

    /// The state a storefront shows, for stock events; order events do not concern it.
    pub fn public(&self) -> Option<&PublicState> {
        self.public.get_or_init(|| public_state(&self.topic, &self.text)).as_ref()
    }
}

fn public_state(topic: &str, text: &str) -> Option<PublicState> {
    /// The four fields the public stream shows, read from the text without building the rest.
    #[derive(serde::Deserialize)]
    struct Shown<'a> {
        #[serde(borrow)]
        sku: std::borrow::Cow<'a, str>,
        available: i64,
        #[serde(borrow)]
        status: std::borrow::Cow<'a, str>,
        version: i64,
    }
    if !topic.starts_with("stock.") {
        return None;
    }
    let shown: Shown<'_> = serde_json::from_str(text).ok()?;
    Some(PublicState {
        sku: shown.sku.into_owned(),
        available: shown.available,
        status: shown.status.into_owned(),
        version: shown.version,
    })
}

pub struct Hub {
    pub pool: PgPool,
    /// The payload of this hub's notifications, random per process: its own come back to
    /// its listener, and it has read those events already.
    notifier: String,
    /// Events go out in the batches they were read in: a client wakes once per read, not
    /// once per event, which is what lets a hundred clients follow a checkout rush.
    sender: broadcast::Sender<Batch>,
    /// The last position broadcast (or passed over with no client to send it to, `read`): a
    /// client that subscribed after this was sent reads it (and anything before) from the log
    /// instead. It never goes back.
    head: AtomicI64,
    /// Where the broadcast still owes events from, `NOTHING_OWED` when it owes none: a client
    /// that subscribed while `head` moved over events unread may have read the old head, and
    /// a failed read must not leave it without them (`read`). Only `read` touches it.
    unsent_from: AtomicI64,
    /// `head`, for the tasks that only need to know that events arrived, not what they are
    /// (the webhook worker plans its deliveries in SQL): they do not count as stream clients,
    /// so a replica with none reads no event data at all.
    moved: watch::Sender<i64>,
    clients: AtomicUsize,
    limit: usize,
    shutdown: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// Counts a connected stream client for as long as it lives.
pub struct ClientSlot(Arc<Hub>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// Starts the replica's reader. `limit` caps the stream clients of this replica.
    pub fn start(pool: PgPool, limit: usize, metrics: Arc<Metrics>) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(BACKLOG);
        let (shutdown, _) = watch::channel(false);
        let hub = Arc::new(Hub {
            pool,
            notifier: uuid::Uuid::new_v4().simple().to_string(),
            sender,
            head: AtomicI64::new(-1),
            moved: watch::channel(-1).0,
            unsent_from: AtomicI64::new(NOTHING_OWED),
            clients: AtomicUsize::new(0),
            limit,
            shutdown,
            metrics,
        });
        tokio::spawn(hub.clone().run());
        hub
    }

    /// A place for one more stream client, or `None` at the replica's limit.
    pub fn admit(self: &Arc<Hub>) -> Option<ClientSlot> {
        let before = self.clients.fetch_add(1, Ordering::Relaxed);
        if before >= self.limit {
            self.clients.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ClientSlot(self.clone()))
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// The events of every read from now on: call it before reading `head`, and every event
    /// after that head arrives.
    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.sender.subscribe()
    }

    /// Changes whenever `head` moves: a wake-up, not a stream client.
    pub fn wakes(&self) -> watch::Receiver<i64> {
        self.moved.subscribe()
    }

    fn advance(&self, to: i64) {
        self.head.fetch_max(to, Ordering::AcqRel);
        self.moved.send_if_modified(|head| {
            let moved = to > *head;
            *head = (*head).max(to);
            moved
        });
    }

    /// The last position broadcast, or passed over with no client to send it to (after
    /// `ready`, never below what was committed then).
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Waits until the hub has read the log once, so `head` means something.
    pub async fn ready(&self) {
        while self.head() < 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Ends every stream (graceful shutdown): clients see the stream end and reconnect elsewhere.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    async fn run(self: Arc<Hub>) {
        // LISTEN runs in a task of its own: a notification wait dropped halfway (by the probe
        // below) could lose track of the connection's state.
        let (wakes, mut woken) = mpsc::channel(64);
        let listening_task = tokio::spawn(listen_loop(self.pool.clone(), wakes, self.clone()));
        let mut listening = false;
        let mut stop = self.shutdown.subscribe();
        let mut probe = tokio::time::interval(PROBE);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_read = Instant::now() - READ_LISTENING;
        let mut read_now = true;
        // When this hub last numbered events, and when it last heard another replica do so.
        let mut sequenced_at: Option<Instant> = None;
        let mut other_at: Option<Instant> = None;
        // Whether this hub's last probe found nothing to number: the next one asks first.
        let mut idle = false;
        loop {
            let read_every = if listening { READ_LISTENING } else { READ_DISCONNECTED };
            if read_now || last_read.elapsed() >= read_every {
                read_now = false;
                last_read = Instant::now();
                if let Err(e) = self.read().await {
                    tracing::warn!(error = %e, "reading the event log failed; retrying");
                }
            }
            tokio::select! {
                wake = woken.recv() => {
                    // Fold the wake-ups already waiting into this one read. A notification
                    // sent while we were not listening is lost; the log is not: read anyway.
                    let mut next = wake;
                    if next.is_none() {
                        listening = false;
                    }
                    while let Some(w) = next.take() {
                        match w {
                            Wake::Listening => listening = true,
                            Wake::Lost => listening = false,
                            Wake::Notified { turn: Some(heard) } => other_at = Some(heard),
                            Wake::Notified { turn: None } => {}
                        }
                        next = woken.try_recv().ok();
                    }
                    read_now = true;
                }
                _ = probe.tick() => {
                    let following = other_at.is_some_and(|other| {
                        other.elapsed() < FOLLOW && sequenced_at.is_none_or(|ours| other > ours)
                    });
                    if !following {
                        match self.sequence(idle).await {
                            // Ours to broadcast now; the other replicas hear our notification.
                            Ok(true) => {
                                sequenced_at = Some(Instant::now());
                                read_now = true;
                                idle = false;
                            }
                            Ok(false) => idle = true,
                            Err(e) => tracing::warn!(error = %e, "sequencing the event log failed; retrying"),
                        }
                    }
                }
                _ = stop.changed() => {
                    listening_task.abort();
                    return;
                }
            }
        }
    }

    /// Gives positions to committed events, if any wait; true when this replica did.
    ///
    /// After a probe that found nothing, `idle` asks first whether anything waits: the
    /// numbering statement costs its executor start-up (two updates, a lock) even with nothing
    /// to do, and an idle hub probes every 10 ms (about 1 % of the machine for the two hubs of
    /// the bench while only carts change, which writes no event).
    async fn sequence(&self, idle: bool) -> Result<bool, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if idle && !events::waiting(&mut conn).await? {
            return Ok(false);
        }
        let mut any = false;
        loop {
            let n = match events::sequence(&mut conn, 5000, &self.notifier).await {
                Ok(n) => n,
                // What the earlier rounds numbered is committed: read it now (the other
                // replicas heard of it; this one ignores its own notifications), retry the rest.
                Err(e) if any => {
                    tracing::warn!(error = %e, "sequencing the event log failed; retrying");
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            any |= n > 0;
            if n < 5000 {
                return Ok(any);
            }
        }
    }

    /// Broadcasts everything after `head` (and after what it still owes, `unsent_from`).
    ///
    /// With no stream client on this replica (the common case for a replica behind a balancer
    /// that a dashboard is not watching), nobody needs the events themselves: `head` moves to
    /// the last sequenced position without reading them. Reading and sending every event was
    /// about 7 % of PostgreSQL's statement time under checkout, for nobody. A client that
    /// subscribes meanwhile may have read the old head and expects the events after it from
    /// the broadcast: so once `head` has moved, a client counted now is sent those events
    /// (it drops any it has), and one that subscribes later reads the new head.
    async fn read(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let head = self.head();
        if head < 0 || self.sender.receiver_count() == 0 {
            // Positions handed out but not yet visible cannot exist: the sequencer that
            // handed them out committed before its lock was free.
            let sequenced = events::marks(&mut conn).await?.0;
            self.advance(sequenced);
            if head < 0 || self.sender.receiver_count() == 0 {
                // No client, so nobody is owed anything either.
                self.unsent_from.store(NOTHING_OWED, Ordering::Release);
                return Ok(());
            }
            // Owed from the old head until it has been sent, even if a read fails first.
            self.unsent_from.fetch_min(head, Ordering::AcqRel);
        }
        let mut from = self.unsent_from.load(Ordering::Acquire).min(self.head());
        loop {
            let rows = events::after(&mut conn, from, &Filter::default(), PAGE).await?;
            let n = rows.len() as i64;
            let Some(last) = rows.last().map(|r| r.position) else { break };
            let batch: Batch = Arc::new(rows.into_iter().map(Event::new).collect());
            from = last;
            self.advance(last);
            // Sent up to here: a read that fails from now on is retried from here.
            self.unsent_from.store(last, Ordering::Release);
            // No receiver is not an error: the last client may have gone meanwhile.
            let _ = self.sender.send(batch);
            if n < PAGE {
                break;
            }
        }
        self.unsent_from.store(NOTHING_OWED, Ordering::Release);
        Ok(())
    }
}

/// What the LISTEN task tells the hub.
enum Wake {
    Listening,
    /// Another replica numbered events (`turn`: when this replica heard it, stamped on
    /// arrival because the hub may be busy sequencing itself), or a reader sequenced before it
    /// read (no turn: `events::sequence_all` sends an empty payload). The hub's own
    /// notifications are not passed on: it read those events when it numbered them.
    Notified {
        turn: Option<Instant>,
    },
    Lost,
}

/// Keeps a LISTEN connection (a pool of one, so it is never one a request waits for),
/// reconnecting with backoff when it drops, and passes every notification on.
async fn listen_loop(pool: PgPool, wakes: mpsc::Sender<Wake>, hub: Arc<Hub>) {
    let listen_pool = PgPoolOptions::new().max_connections(1).connect_lazy_with((*pool.connect_options()).clone());
    let mut backoff = Duration::from_millis(100);
    let mut ever_connected = false;
    loop {
        match listen(&listen_pool).await {
            Ok(mut listener) => {
                if ever_connected {
                    hub.metrics.listen_reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("event notifications reconnected");
                }
                ever_connected = true;
                backoff = Duration::from_millis(100);
                if wakes.send(Wake::Listening).await.is_err() {
                    return;
                }
                while let Ok(Some(note)) = listener.try_recv().await {
                    if note.payload() == hub.notifier {
                        continue;
                    }
                    // A full channel already holds a wake-up: nothing is lost.
                    let turn = (!note.payload().is_empty()).then(Instant::now);
                    let _ = wakes.try_send(Wake::Notified { turn });
                }
                tracing::warn!("event notification connection lost; polling until it is back");
                if wakes.send(Wake::Lost).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for events; polling meanwhile");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    // A lost connection is ours to notice and count; do not let it reconnect quietly.
    listener.eager_reconnect(false);
    listener.listen(events::CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(topic: &str, text: &str) -> StoredEvent {
        StoredEvent {
            position: 42,
            topic: topic.into(),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            payload: text.into(),
        }
    }

    /// The admin frame embeds the text PostgreSQL sent; its data line must be the resource the
    /// event list answers, and one line.
    #[test]
    fn the_admin_frame_carries_the_resource_of_the_list() {
        let text = r#"{"sku": "TEE", "kind": "reservation", "note": "a \"quoted\"\nline", "available": 7, "status": "in_stock", "version": 3}"#;
        let e = stored("stock.changed", text);
        let resource = resource(&e);
        let frame = Event::new(e).admin_frame();
        let frame = std::str::from_utf8(&frame).unwrap();
        let lines: Vec<&str> = frame.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines[..2], ["id: 42", "event: stock.changed"]);
        let data: Value = serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data, resource);
        assert_eq!(lines.len(), 3);
        assert!(frame.ends_with("\n\n"));
    }

    #[test]
    fn only_stock_events_have_a_public_state_and_sku_filters_read_the_data() {
        let text = r#"{"sku": "TEE", "available": 7, "status": "low_stock", "version": 3, "delta_on_hand": -1}"#;
        let stock = Event::new(stored("stock.changed", text));
        let shown = stock.public().unwrap();
        assert_eq!(
            (shown.sku.as_str(), shown.available, shown.status.as_str(), shown.version),
            ("TEE", 7, "low_stock", 3)
        );
        let order = Event::new(stored("order.created", r#"{"order": {"lines": [{"sku": "TEE"}]}}"#));
        assert!(order.public().is_none());
        let by_sku = |sku: &str| Filter { sku: Some(sku.into()), ..Filter::default() };
        assert!(order.matches(&by_sku("TEE")) && stock.matches(&by_sku("TEE")));
        assert!(!order.matches(&by_sku("CAP")) && !stock.matches(&by_sku("CAP")));
        let stock_only = Filter { families: vec!["stock.".into()], ..Filter::default() };
        assert!(stock.matches(&stock_only) && !order.matches(&stock_only));
    }
}
