#!/usr/bin/env bash
# Latency of the report endpoints against a running stockcart (after ledger.sql and the
# rollup catch-up): N sequential requests per endpoint, p50 and p95 in milliseconds.
#   scripts/bench.d/reports.sh http://127.0.0.1:8080 "$STOCKCART_ADMIN_TOKEN" [N]
set -euo pipefail
base=$1 token=$2 n=${3:-40}
for path in \
  "/v1/admin/reports/stock" "/v1/admin/reports/stock?window=366d&sort=days_of_cover" \
  "/v1/admin/reports/stock?window=7d&status=out" \
  "/v1/admin/reports/movements?bucket=day" "/v1/admin/reports/movements?bucket=hour&from=$(date -u -d '-365 days' +%FT%TZ)" \
  "/v1/admin/reports/movements?sku=L00042&bucket=hour" \
  "/v1/admin/reports/top?by=revenue" "/v1/admin/reports/top?by=units&window=366d" \
  "/v1/admin/reports/reservations" "/v1/admin/reports/stock|csv"; do
  accept=application/json
  case $path in *"|csv") path=${path%|csv}; accept=text/csv;; esac
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $token" -H "Accept: $accept" "$base$path"
  done | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
bad = [r for r in rows if r[0] != "200"]
ms = sorted(float(r[1]) * 1000 for r in rows)
pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
print(f"p50 {pick(0.5):7.1f} ms  p95 {pick(0.95):7.1f} ms  ({len(ms)} requests, {len(bad)} not 200)  " + sys.argv[1])
' "$path ($accept)"
done
