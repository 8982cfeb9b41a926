#!/usr/bin/env bash
# The widget's browser test against a real tidechat server: starts the
# server on a fresh SQLite database, creates an organization and a site that
# allows the test page's origin, then runs e2e/run.sh. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
port=${TIDECHAT_E2E_PORT:-18431}
page_port=${PAGE_PORT:-4455}
bin=${TIDECHAT_BIN:-target/debug/tidechat}
[ -x "$bin" ] || cargo build -q -p tidechat

export TIDECHAT_DATABASE_URL="sqlite://$work/e2e.db"
export TIDECHAT_NO_DEMO=true
org=$("$bin" org create --name "Widget E2E" --json)
key=$(printf '%s' "$org" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')
org_id=$(printf '%s' "$org" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orgId"])')
printf 'question,answer\nHow do I reset my password?,Use the reset link on the sign-in page.\n' > "$work/faq.csv"
"$bin" faq import --org "$org_id" "$work/faq.csv" >/dev/null

TIDECHAT_BIND="127.0.0.1:$port" TIDECHAT_UPLOAD_DIR="$work/uploads" "$bin" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

site=$(curl -sf -X POST "http://127.0.0.1:$port/v1/sites" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d "{\"name\":\"E2E shop\",\"allowedOrigins\":[\"http://localhost:$page_port\"],\"settings\":{\"greeting\":\"Hi! Ask me anything.\",\"askEmail\":true}}")
export SITE_KEY=$(printf '%s' "$site" | python3 -c 'import json,sys; print(json.load(sys.stdin)["siteKey"])')
export SITE_ID=$(printf '%s' "$site" | python3 -c 'import json,sys; print(json.load(sys.stdin)["siteId"])')
export TIDECHAT_URL="http://127.0.0.1:$port"
export TIDECHAT_API_KEY="$key"
export PAGE_PORT="$page_port"

if ! e2e/run.sh; then
  echo "--- server log ---" >&2
  tail -50 "$work/server.log" >&2
  exit 1
fi
