#!/usr/bin/env bash
# A headless browser for the moderators' pages test (tests/web_browser.rs): Debian's
# chromium and its WebDriver (chromedriver). Idempotent; installs with apt-get as root.
# The test finds /usr/bin/chromium and /usr/bin/chromedriver (or MEMEGUARD_CHROMIUM and
# MEMEGUARD_CHROMEDRIVER).
exec "$(dirname "$0")/apt-install.sh" setup-browser chromium chromium-driver fonts-dejavu-core
