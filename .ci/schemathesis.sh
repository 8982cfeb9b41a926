#!/usr/bin/env bash
# Schemathesis against the committed OpenAPI document, on a server backed by
# SQLite and on one backed by PostgreSQL: every operation, a fixed seed and a
# bounded number of examples; fails on any 5xx, any response that breaks its
# schema, an undocumented status code or content type.
#   TIDECHAT_BIN (default target/debug/tidechat), ST_EXAMPLES (default 20),
#   ST_SEED (default 42), TIDECHAT_TEST_POSTGRES_URL (the server to create a
#   throw-away database on; PostgreSQL is skipped when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${TIDECHAT_BIN:-target/debug/tidechat}"
EXAMPLES="${ST_EXAMPLES:-20}"
SEED="${ST_SEED:-42}"
VERSION=4.32.5
if ! schemathesis --version 2>/dev/null | grep -q "$VERSION"; then
  python3 -m pip install -q "schemathesis==$VERSION" 2>&1 | grep -v 'Running pip as' || true
fi
OUT="$PWD/target/schemathesis"
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME DATABASE_URL
run() {
  local name=$1 url=$2 dir port pid key status=0
  dir=$(mktemp -d)
  port=$(free_port)
  (cd "$dir" && TIDECHAT_BIND="127.0.0.1:$port" TIDECHAT_DEFAULT_RPM=1000000 \
    TIDECHAT_MODERATION_CLASSIFIER=off TIDECHAT_EMBEDDER=none TIDECHAT_LOG=warn,tidechat=info \
    exec "$OLDPWD/$BIN" --database-url "$url") >"$OUT/$name-server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  key=$(grep -o 'tc_[A-Za-z0-9_-]*' "$OUT/$name-server.log" | head -1)
  if [ -z "$key" ]; then
    echo "schemathesis ($name): the server did not print a demo key" >&2
    cat "$OUT/$name-server.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
  fi
  echo "--- schemathesis against $name (seed $SEED, $EXAMPLES examples per operation)"
  # One worker: hypothesis' lambda-source cache is not thread-safe on
  # Python 3.11 (runs with two workers died of "AST constructor recursion
  # depth mismatch" inside hypothesis).
  schemathesis run openapi/openapi.json --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $key" \
    --seed "$SEED" --max-examples "$EXAMPLES" --workers 1 --no-color \
    --phases examples,coverage,fuzzing \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --report junit --report-junit-path "$OUT/$name.xml" >"$OUT/$name.txt" 2>&1 || status=$?
  tail -20 "$OUT/$name.txt"
  if [ "$status" -ne 0 ]; then
    echo "schemathesis ($name) failed; the whole report is in $OUT/$name.txt" >&2
    grep -A25 "^___" "$OUT/$name.txt" | cut -c1-300 | head -200 >&2 || true
  fi
  if grep -q 'panicked' "$OUT/$name-server.log"; then
    echo "schemathesis ($name): the server panicked" >&2
    grep -B2 -A10 'panicked' "$OUT/$name-server.log" | head -60 >&2
    status=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  return "$status"
}

run sqlite "sqlite://./schemathesis.db"

if [ -n "${TIDECHAT_TEST_POSTGRES_URL:-}" ]; then
  db="tidechat_schemathesis_$$"
  base="${TIDECHAT_TEST_POSTGRES_URL%/*}"
  psql "$TIDECHAT_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
  trap 'psql "$TIDECHAT_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
  run postgres "$base/$db"
else
  echo "schemathesis: TIDECHAT_TEST_POSTGRES_URL is not set; PostgreSQL skipped"
fi
