#!/usr/bin/env bash
# The system programs `make test`'s browser stage needs: Chromium (headless, at
# /usr/bin/chromium, driven by Playwright) and npm (fetches MathJax and the widget
# renderer for the offline book). As root with apt-get (containers, CI) they are
# installed; otherwise they are named, and the run stops, unless
# ALLOW_SKIP_BROWSER=1 says to run everything but the browser stage.
# Exit status: 0 ready, 3 missing but skipping was allowed, 1 missing.
set -uo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing system packages: ${need[*]}"
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
    # Optional: an emoji font, so the checks' ✅ show in the browser screenshots (not needed to pass).
    dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null 2>&1 || true
    [ -x /usr/bin/chromium ] && command -v npm >/dev/null 2>&1 && exit 0
  fi
  echo "ERROR: could not install ${need[*]} with apt-get." >&2
  [ "${ALLOW_SKIP_BROWSER:-0}" = 1 ] && { echo "note: ALLOW_SKIP_BROWSER=1: the browser stage is skipped."; exit 3; }
elif [ "${ALLOW_SKIP_BROWSER:-0}" = 1 ]; then
  echo "note: ${need[*]} missing; ALLOW_SKIP_BROWSER=1, so the book's browser stage is skipped."
  exit 3
else
  echo "ERROR: make test needs ${need[*]} for the book's browser tests: on Debian/Ubuntu" \
       "'sudo apt-get install ${need[*]}' (Chromium must be /usr/bin/chromium: Debian's package, not a snap)," \
       "or run 'make test ALLOW_SKIP_BROWSER=1' to skip those tests knowingly." >&2
fi
exit 1
