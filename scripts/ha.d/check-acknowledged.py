#!/usr/bin/env python3
"""After a fault: every acknowledged checkout in a loadgen client log (--client-log) exists in
the database with its lines, its reservation movements and its order.placed event; no request
was answered 500; and the time to recovery, from the fault to the first checkout that was sent
after it and acknowledged (201).

usage: check-acknowledged.py CLIENT_LOG FAULT_AT_MS DATABASE_URL
Prints one JSON object; exits 1 when something acknowledged is missing or a 500 was answered.
"""
import json, subprocess, sys

log_path, fault_at, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entries = [json.loads(line) for line in open(log_path) if line.strip()]
acked = {}
for e in entries:
    if e.get("op") == "checkout" and e.get("status") == 201 and e.get("order"):
        lines = sorted((l["sku"], l["quantity"]) for l in e.get("lines", []))
        previous = acked.setdefault(e["order"], lines)
        assert previous == lines, f"order {e['order']} acknowledged with two different line sets"
errors = [e for e in entries if e.get("status", 0) >= 500 and e.get("status") not in (502, 503, 504)]
unavailable = sum(1 for e in entries if e.get("status") in (0, 502, 503, 504))
abandoned = [e for e in entries if e.get("op") == "checkout_abandoned"]
after = [e for e in entries if e.get("op") == "checkout" and e.get("status") == 201 and e["at"] - e.get("ms", 0) >= fault_at]
recovery_ms = min(e["at"] for e in after) - fault_at if after else None


def psql(sql, data):
    out = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], input=data, text=True,
                         capture_output=True, check=True).stdout
    return out


# One statement for all: the orders acknowledged, as the client saw them, against what the
# database holds (lines, reservation movements, placed events).
rows = [{"order": o, "sku": s, "quantity": q} for o, ls in acked.items() for s, q in ls]
missing = []
if rows:
    sql = """
CREATE TEMP TABLE acked (doc jsonb);
COPY acked FROM STDIN;
ANALYZE acked;
WITH a AS (SELECT (doc->>'order')::uuid AS order_id, doc->>'sku' AS sku, (doc->>'quantity')::bigint AS quantity FROM acked),
     ids AS (SELECT DISTINCT order_id FROM a),
     placed AS (SELECT DISTINCT (e.payload->'order'->>'id')::uuid AS order_id FROM outbox_events e
                WHERE e.topic = 'order.placed'),
     reserved AS (SELECT m.order_id, m.sku, sum(m.delta_reserved) AS quantity
                  FROM stock_movements m JOIN ids USING (order_id) WHERE m.kind = 'reservation' GROUP BY 1, 2)
SELECT a.order_id || ' ' || a.sku || ' ' ||
       CASE WHEN o.id IS NULL THEN 'order missing'
            WHEN l.order_id IS NULL THEN 'line missing or different'
            WHEN r.quantity IS DISTINCT FROM a.quantity THEN 'reservation movement missing'
            ELSE 'order.placed event missing' END
FROM a
LEFT JOIN orders o ON o.id = a.order_id
LEFT JOIN order_lines l ON l.order_id = a.order_id AND l.sku = a.sku AND l.quantity = a.quantity
LEFT JOIN reserved r ON r.order_id = a.order_id AND r.sku = a.sku
LEFT JOIN placed p ON p.order_id = a.order_id
WHERE o.id IS NULL OR l.order_id IS NULL OR r.quantity IS DISTINCT FROM a.quantity OR p.order_id IS NULL;
"""
    data = "".join(json.dumps(r).replace("\\", "\\\\") + "\n" for r in rows)
    missing = [line for line in psql(sql, data).splitlines() if line]

result = {
    "requests": len(entries),
    "acknowledged_orders": len(acked),
    "missing": missing[:20],
    "missing_count": len(missing),
    "server_errors": len(errors),
    "unavailable_answers": unavailable,
    "abandoned_checkouts": len(abandoned),
    "recovery_ms": recovery_ms,
}
print(json.dumps(result))
sys.exit(1 if missing or errors or recovery_ms is None else 0)
