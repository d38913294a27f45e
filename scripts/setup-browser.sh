#!/usr/bin/env bash
# A headless browser for the moderators' pages test (tests/web_browser.rs): Debian's
# chromium and its WebDriver (chromedriver). Idempotent; installs with apt-get as root.
# Prints nothing on success; the test finds /usr/bin/chromium and /usr/bin/chromedriver.
set -euo pipefail
log() { echo "setup-browser: $*" >&2; }

packages=(chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  log "missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
