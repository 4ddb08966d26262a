#!/usr/bin/env bash
# Render a study's report.html in headless Chromium (Debian's `chromium` package) and save a
# full-page screenshot, to check that the page and its embedded figures display.
#   scripts/check_report.sh demo-output/report.html demo-output/report.png
set -euo pipefail
report="$(realpath "$1")"
shot="${2:-${report%.html}.png}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "error: no Chromium found (Debian: apt-get install chromium)" >&2
    exit 2
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1200,"${HEIGHT:-6000}" \
    --screenshot="$(realpath -m "$shot")" "file://$report" 2>/dev/null
echo "screenshot: $shot"
