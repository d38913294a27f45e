#!/usr/bin/env bash
# A headless browser for the moderators' pages test (tests/web_browser.rs): Debian's
# chromium and its WebDriver (chromedriver). Idempotent; installs with apt-get as root.
# Prints nothing on success; the test finds /usr/bin/chromium and /usr/bin/chromedriver.
set -euo pipefail
exec "$(dirname "$0")/apt-ensure.sh" setup-browser chromium chromium-driver fonts-dejavu-core
