#!/usr/bin/env bash
# The test command: on a fresh machine it installs the outside tools the tests talk to (Debian packages) when they
# are missing, then runs `swift test`. Extra arguments go to `swift test` (e.g. --filter HTTPProxyTests).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package for each command the tests run: curl (director tests), chromium and its driver (the bench's HTML
# report is opened in headless Chromium).
declare -A packages=([curl]=curl [chromium]=chromium [chromedriver]=chromium-driver [pip3]=python3-pip)
missing=()
for command in "${!packages[@]}"; do
    command -v "$command" > /dev/null 2>&1 || missing+=("${packages[$command]}")
done
if ((${#missing[@]})); then
    echo "installing test tools: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Selenium (PyPI) drives Chromium; it uses Debian's chromedriver and downloads nothing.
if ! python3 -c "import selenium" > /dev/null 2>&1; then
    echo "installing test tools: selenium (PyPI)" >&2
    pip3 install -q selenium 2> /dev/null || pip3 install -q --break-system-packages selenium
fi

# --no-parallel: the integration suites measure time and load; run side by side they would skew each other.
exec swift test --no-parallel "$@"
