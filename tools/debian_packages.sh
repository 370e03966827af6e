#!/usr/bin/env bash
# Installs the Debian packages some tests need and pip cannot provide, if they are missing.
#
#   tools/debian_packages.sh PACKAGE:COMMAND ...     e.g. prometheus:promtool
#
# A package is missing when its COMMAND is not on PATH. Missing packages are installed with
# apt-get only when running as root; otherwise one line says so and the script succeeds (the
# tests that need them skip). apt-get update runs only if the first install attempt fails.
set -uo pipefail

missing=()
for spec in "$@"; do
    package=${spec%%:*}
    command=${spec#*:}
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "debian-packages: not root, not installing ${missing[*]} (tests that need them skip)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
echo "debian-packages: installing ${missing[*]}"
if ! apt_install 2>/dev/null; then
    apt-get update -qq >/dev/null && apt_install || {
        echo "debian-packages: apt-get could not install ${missing[*]}" >&2
        exit 1
    }
fi
