#!/usr/bin/env bash
# Installs the benchmark peer (LiteLLM proxy, from PyPI) into a virtualenv
# under target/bench/, once. Failure is not fatal: the report then marks the
# peer's columns "not run".
set -uo pipefail
cd "$(dirname "$0")/.."
venv=target/bench/litellm-venv
if [ -x "$venv/bin/litellm" ]; then exit 0; fi
mkdir -p target/bench
python3 -m venv "$venv" && "$venv/bin/pip" install -q 'litellm[proxy]' \
  || echo "warning: could not install litellm[proxy]; the peer will be reported as not run" >&2
exit 0
