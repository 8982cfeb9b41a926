#!/usr/bin/env bash
# Browser tests of the chat widget (crates/tidechat-api/assets/widget.js) in Debian's Chromium.
#   e2e/run.sh          the widget's edge states (stubbed, no server), then the end-to-end test
#                       against a running tidechat: needs TIDECHAT_URL, TIDECHAT_API_KEY, SITE_KEY,
#                       SITE_ID (and PAGE_URL, or PAGE_PORT: default 4455), see widget.test.mjs
#   e2e/run.sh --mock   the end-to-end test against the bundled mock server instead
# SCREENSHOT=1 also saves docs/widget.png. CHROMIUM overrides the browser (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")"

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "run.sh: $CHROMIUM not found; installing Debian's chromium" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  if [ ! -x "$CHROMIUM" ]; then
    echo "run.sh: no chromium at $CHROMIUM after installing; set CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
fi

node widget-states.test.mjs
node widget.test.mjs "$@"
