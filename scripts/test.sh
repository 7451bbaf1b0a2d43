#!/usr/bin/env bash
# The test command: on a fresh machine it installs the outside tools the tests talk to (Debian packages) when they
# are missing, then runs `swift test`. Extra arguments go to `swift test` (e.g. --filter HTTPProxyTests).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package for each command the tests run.
declare -A packages=([curl]=curl)
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

exec swift test "$@"
