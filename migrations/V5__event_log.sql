-- The outbox becomes an event log with one total order shared by every replica.
--
-- Writers keep inserting into outbox_events in their own transactions. The identity `id` they
-- get is handed out at insert and committed out of order, so a reader resuming from
-- `id > n` could pass over a row whose transaction commits a moment later. `position` is
-- therefore given after commit, by one sequencer at a time (an advisory lock), to committed
-- rows in `id` order: positions become visible only in increasing order, and "everything
-- after n" can never skip a late commit. The API's event id is the position.
ALTER TABLE outbox_events ADD COLUMN position bigint;
UPDATE outbox_events SET position = id;
CREATE UNIQUE INDEX outbox_events_position ON outbox_events (position) WHERE position IS NOT NULL;
CREATE INDEX outbox_events_unsequenced ON outbox_events (id) WHERE position IS NULL;

-- Two counters of the log, each a row of its own so the sequencer and the retention task
-- never wait for each other: `sequenced` is the last position handed out (positions must
-- never be reused, even after retention deleted every event), `pruned` the highest position
-- retention deleted (a resume from below it has lost events and gets `reset`).
CREATE TABLE event_log_marks (
    name  text PRIMARY KEY CONSTRAINT event_log_marks_name CHECK (name IN ('sequenced', 'pruned')),
    value bigint NOT NULL
);
INSERT INTO event_log_marks VALUES
    ('sequenced', (SELECT coalesce(max(id), 0) FROM outbox_events)),
    ('pruned', 0);

-- Writers do not NOTIFY: a transaction that notifies takes a database-wide lock through its
-- commit, which would put every checkout and stock change in one line. Each replica's event
-- reader instead looks for unsequenced rows every few milliseconds (an index probe of the
-- small partial index above), sequences them, and only the sequencer notifies the others.

-- Event data as the contract renders it: order events carry {"order": ...}; stock.changed
-- carries the version it follows and the deltas.
UPDATE outbox_events SET payload = jsonb_build_object('order', payload) WHERE topic LIKE 'order.%';
UPDATE outbox_events e
SET payload = e.payload || jsonb_build_object(
        'previous_version', m.version_after - 1,
        'delta_on_hand', m.delta_on_hand,
        'delta_reserved', m.delta_reserved)
FROM stock_movements m
WHERE e.topic = 'stock.changed' AND m.id = (e.payload ->> 'movement_id')::bigint;

-- The low-stock threshold moves to the stock level. A stock change locks its level row and
-- decides the stock status from it; a threshold edit now updates that same row, so a change
-- waiting for the lock re-reads the new threshold (a joined products row would be read from
-- the waiter's old snapshot, and one crossing could give two events or none).
ALTER TABLE stock_levels ADD COLUMN low_stock_threshold bigint NOT NULL DEFAULT 0
    CONSTRAINT stock_threshold_nonnegative CHECK (low_stock_threshold >= 0);
UPDATE stock_levels s SET low_stock_threshold = p.low_stock_threshold FROM products p WHERE p.sku = s.sku;
ALTER TABLE products DROP COLUMN low_stock_threshold;
