#!/usr/bin/env bash
# The test command: on a fresh machine it installs the outside tools the tests talk to (Debian packages) when they
# are missing, then runs `swift test`. Extra arguments go to `swift test` (e.g. --filter HTTPProxyTests).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package for each command the tests run: curl (director and IPTV tests), keepalived and iproute2 (the HA lab,
# in network namespaces), chromium and its driver (the bench's HTML report and the IPTV player are opened in headless
# Chromium), ffmpeg and ffprobe (streams for the TS parser tests, live feeds and players for the IPTV tests), openssl
# (certificates, and s_client against the TLS front), nghttp and h2load (HTTP/2 clients), promtool (the metrics'
# format), systemd-analyze (the units) and kubectl (Debian's kubernetes-client, against the in-test API server of
# the autoscaler's kubernetes provider), jmeter with its HTTP sampler and javac (the scenarios' jmeter step compiles
# the launcher Debian's JMeter 2.13 needs), nft, conntrack and conntrackd (the kernel NAT path: its rules, its flows, their sync between directors).
declare -A packages=([curl]=curl [chromium]=chromium [chromedriver]=chromium-driver [pip3]=python3-pip [keepalived]=keepalived
                     [ip]=iproute2 [ffmpeg]=ffmpeg [ffprobe]=ffmpeg [openssl]=openssl [nghttp]=nghttp2-client
                     [h2load]=nghttp2-client [promtool]=prometheus [systemd-analyze]=systemd
                     [kubectl]=kubernetes-client [jmeter]=jmeter [javac]=default-jdk-headless [nft]=nftables
                     [conntrack]=conntrack [conntrackd]=conntrackd)
missing=()
for command in "${!packages[@]}"; do
    command -v "$command" > /dev/null 2>&1 || missing+=("${packages[$command]}")
done
# The HTTP sampler has no command of its own.
[ -e /usr/share/jmeter/lib/ext/ApacheJMeter_http.jar ] || missing+=(jmeter-http)
mapfile -t missing < <(printf "%s\n" "${missing[@]}" | sort -u | grep -v "^$" || true)
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

# With arguments (e.g. --filter X), one plain run.
if (($#)); then exec swift test "$@"; fi

# The code is formatted to .swift-format (4 spaces, 120 columns): `swift format --in-place --recursive Sources Tests`
# fixes what this finds.
swift format lint --strict --recursive --parallel Sources Tests Package.swift

# Swift Testing runs suites side by side; the bench's integration suite measures time and load, and the IPTV end-to-end
# suite plays live video in real time (ffmpeg, Chromium), so each runs on its own after everything else, on the same
# build: side by side, the bench's load stalled Chromium's playback by over a second on this 2-core machine.
swift test --skip "BenchIntegration|IPTVEndToEnd"
swift test --skip-build --filter "BenchIntegration"
swift test --skip-build --filter "IPTVEndToEnd"

# Coverage-guided fuzzing (libFuzzer + address sanitizer) of every parser and the exchange state machine, from the
# committed corpus, FUZZ_SECONDS each (20 by default; 0 skips): about 5 minutes with its own build.
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh; fi
