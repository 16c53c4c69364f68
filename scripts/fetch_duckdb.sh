#!/usr/bin/env bash
# Fetch DuckDB's C library and header (not packaged by Debian 12) from the npm registry into
# third_party/duckdb/ (gitignored): lib/libduckdb.so from @duckdb/node-bindings-linux-x64 and
# include/duckdb.h from the `duckdb` package's source tree, pinned to the same DuckDB release and
# to the SHA-256 of each tarball (downloaded with curl: npm is not needed).
# Idempotent: does nothing when the pinned version is already there. Called by scripts/setup.sh;
# CMake finds the result (CELLTYPER_DUCKDB_DIR) and links with an rpath to it.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION="1.4.4"                  # duckdb.h comes from duckdb@$DUCKDB_VERSION
BINDINGS_VERSION="${DUCKDB_VERSION}-r.4"  # libduckdb.so of the same release (node-bindings tag -r.N)
BINDINGS_SHA256="732fac4dc6b8f198870b9c4bb6ddf13544466daca00ad28ba2f1d80de5d7aa4b"
SOURCE_SHA256="5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed"
REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
DEST="third_party/duckdb"
STAMP="$DEST/VERSION"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$BINDINGS_VERSION" ] && [ -f "$DEST/lib/libduckdb.so" ] && [ -f "$DEST/include/duckdb.h" ]; then
  echo "fetch_duckdb: DuckDB $BINDINGS_VERSION already in $DEST"
  exit 0
fi
command -v curl >/dev/null || { echo "fetch_duckdb: curl is required (apt-get install curl)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The two tarballs straight from the npm registry (no npm needed), each checked against its pin.
fetch() {  # URL FILE SHA256
  curl -fsSL --retry 3 -o "$WORK/$2" "$1" || { echo "fetch_duckdb: cannot download $1" >&2; exit 1; }
  local actual
  actual="$(sha256sum "$WORK/$2" | cut -d' ' -f1)"
  if [ "$actual" != "$3" ]; then
    echo "fetch_duckdb: $1 has SHA-256 $actual, expected $3: not installed" >&2
    exit 1
  fi
}
fetch "$REGISTRY/@duckdb/node-bindings-linux-x64/-/node-bindings-linux-x64-$BINDINGS_VERSION.tgz" \
  "duckdb-node-bindings-linux-x64-$BINDINGS_VERSION.tgz" "$BINDINGS_SHA256"
fetch "$REGISTRY/duckdb/-/duckdb-$DUCKDB_VERSION.tgz" "duckdb-$DUCKDB_VERSION.tgz" "$SOURCE_SHA256"
mkdir -p "$WORK/bindings" "$WORK/source"
tar -xzf "$WORK"/duckdb-node-bindings-linux-x64-"$BINDINGS_VERSION".tgz -C "$WORK/bindings" package/libduckdb.so
tar -xzf "$WORK"/duckdb-"$DUCKDB_VERSION".tgz -C "$WORK/source" package/src/duckdb/src/include/duckdb.h package/LICENSE 2>/dev/null ||
  tar -xzf "$WORK"/duckdb-"$DUCKDB_VERSION".tgz -C "$WORK/source" package/src/duckdb/src/include/duckdb.h

rm -rf "$DEST"
mkdir -p "$DEST/lib" "$DEST/include"
cp "$WORK/bindings/package/libduckdb.so" "$DEST/lib/"
cp "$WORK/source/package/src/duckdb/src/include/duckdb.h" "$DEST/include/"
[ -f "$WORK/source/package/LICENSE" ] && cp "$WORK/source/package/LICENSE" "$DEST/LICENSE"
echo "$BINDINGS_VERSION" > "$STAMP"
echo "fetch_duckdb: DuckDB $BINDINGS_VERSION in $DEST"
