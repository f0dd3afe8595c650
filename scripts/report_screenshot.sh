#!/usr/bin/env bash
# Re-make docs/report.png (the README's picture of `sentiq compare --html`) from the committed stand-in
# runs, with headless Chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
html="$(mktemp -d)/report.html"
sentiq compare --results-dir results/standin --html "$html" >/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-background-networking \
  --window-size=1280,1500 --screenshot=docs/report.png "file://$html" 2>/dev/null
echo "wrote docs/report.png"
