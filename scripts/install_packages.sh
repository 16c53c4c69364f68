#!/usr/bin/env bash
# Install Debian packages that are not installed yet (one apt-get call for all of them).
#   scripts/install_packages.sh PACKAGE...
# Used by scripts/setup.sh (what the tool needs) and scripts/test.sh (what tests and benchmarks
# add: GoogleTest, the peers in R and Python, Chromium, nginx). Run as root or with sudo.
set -euo pipefail
missing=()
for package in "$@"; do
  # An npm that is already there (e.g. bundled with a NodeSource nodejs, which Debian's npm
  # package conflicts with) is enough: npm only fetches DuckDB.
  [ "$package" = npm ] && command -v npm >/dev/null && continue
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$(basename "$0"): all $# Debian packages present"
  exit 0
fi
echo "$(basename "$0"): installing ${#missing[@]} Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
