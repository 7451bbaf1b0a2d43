#!/usr/bin/env bash
# Installs SwiftVS as a system service: builds swiftvs in release mode, installs it to /usr/local/bin, the systemd
# units (swiftvs-director, swiftvs-iptv) to /etc/systemd/system, a commented default config to /etc/swiftvs (an
# existing one is kept), and a system user `swiftvs`. Run as root from the repository:
#
#   sudo scripts/install.sh            # then: edit /etc/swiftvs/director.yaml; systemctl enable --now swiftvs-director
#   PREFIX=/opt/swiftvs scripts/install.sh   # the binary elsewhere (the units are rewritten to match)
#   SKIP_BUILD=1 scripts/install.sh    # use .build/release/swiftvs as it is (BINARY=path: another build)
#   DESTDIR=/tmp/root scripts/install.sh   # into a staging root (no user, no daemon-reload), for packaging
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
root="${DESTDIR:-}"

if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release --product swiftvs
fi
binary="${BINARY:-.build/release/swiftvs}"
[ -x "$binary" ] || { echo "install.sh: $binary is missing: build it (swift build -c release)" >&2; exit 1; }

install -D -m 0755 "$binary" "$root$prefix/bin/swiftvs"
for unit in swiftvs-director swiftvs-iptv; do
    sed "s|/usr/local/bin/swiftvs|$prefix/bin/swiftvs|g" "packaging/systemd/$unit.service" > "/tmp/$unit.service.$$"
    install -D -m 0644 "/tmp/$unit.service.$$" "$root/etc/systemd/system/$unit.service"
    rm -f "/tmp/$unit.service.$$"
done
for config in director iptv; do
    if [ -e "$root/etc/swiftvs/$config.yaml" ]; then
        echo "keeping $root/etc/swiftvs/$config.yaml (the shipped one is packaging/$config.yaml)"
    else
        install -D -m 0644 "packaging/$config.yaml" "$root/etc/swiftvs/$config.yaml"
    fi
done
if [ -z "$root" ]; then
    id -u swiftvs > /dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin swiftvs
    systemctl daemon-reload 2> /dev/null || true
fi
cat << DONE
installed $prefix/bin/swiftvs, swiftvs-director.service and swiftvs-iptv.service
next:  edit /etc/swiftvs/director.yaml
       swiftvs director --check-config /etc/swiftvs/director.yaml
       systemctl enable --now swiftvs-director
DONE
