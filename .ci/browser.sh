#!/bin/sh
# Make Debian's Chromium available for tests/test_browser.py (Playwright drives /usr/bin/chromium;
# `playwright install` is never used — it downloads from a CDN).
#
#   .ci/browser.sh          install chromium (+ a small CJK font for readable screenshots) if missing
#
# Idempotent: does nothing when /usr/bin/chromium already runs. As root on Debian/Ubuntu it
# installs with apt-get; otherwise it prints why it cannot and exits 1 (as .ci/run expects of
# a component that could not come up); the browser tests then skip with their own clear reason.
set -u

CHROMIUM=/usr/bin/chromium

font() {  # a small CJK font so unit names in the screenshots are legible (optional, best effort)
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && \
       ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei \
            >/dev/null 2>&1 || echo "browser.sh: note: fonts-wqy-microhei not installed; CJK text may show as boxes"
    fi
}

if [ -x "$CHROMIUM" ] && "$CHROMIUM" --version >/dev/null 2>&1; then
    font
    echo "browser.sh: $("$CHROMIUM" --version 2>/dev/null) already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "browser.sh: SKIP: $CHROMIUM is missing and we are not root (cannot apt-get install chromium);" \
         "the browser tests will be skipped"
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser.sh: SKIP: $CHROMIUM is missing and there is no apt-get on this system;" \
         "the browser tests will be skipped"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "browser.sh: installing Debian's chromium with apt-get ..."
if ! apt-get update -qq; then
    echo "browser.sh: SKIP: apt-get update failed (no network to the Debian mirror?);" \
         "the browser tests will be skipped"
    exit 1
fi
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    echo "browser.sh: SKIP: apt-get install chromium failed; the browser tests will be skipped"
    exit 1
fi
font
echo "browser.sh: $("$CHROMIUM" --version 2>/dev/null) installed"
exit 0
