-- Webhooks: endpoints that receive events, and one delivery per (endpoint, event).
--
-- Deliveries are planned from the event log by a per-endpoint cursor (the last position
-- planned), advanced in the same transaction that inserts the deliveries: positions become
-- visible only in increasing order, so everything at or below a visible position is visible
-- and no event can be missed or planned twice.
CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    url             text NOT NULL,
    -- Exact types and families (`stock.*`); empty means every type.
    types           text[] NOT NULL DEFAULT '{}',
    description     text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'enabled'
                    CONSTRAINT webhook_endpoints_status CHECK (status IN ('enabled', 'disabled')),
    disabled_reason text,
    -- Secrets are sealed (XChaCha20-Poly1305) with a key the database never sees, so a dump
    -- alone cannot sign. The previous one signs too until `previous_secret_until`.
    secret          bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamptz,
    cursor          bigint NOT NULL,
    -- Start of an unbroken run of failed attempts; five days of it disable the endpoint.
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        bigint NOT NULL,
    event_type      text NOT NULL,
    -- Deliveries of one key (the SKU of a stock event, the order of an order event) go to an
    -- endpoint one at a time, in event order.
    key             text NOT NULL,
    -- The exact bytes sent, so every retry carries the same body (and signature input), and
    -- retention of the event log cannot take a pending delivery's event away.
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A claim: the replica sending it until then; a replica that dies loses its claim when
    -- the lease runs out, and another one retries.
    lease_until     timestamptz,
    claim           uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_key ON webhook_deliveries (endpoint_id, key, event_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
-- Finished deliveries are deleted with the events they carried (retention).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending';
