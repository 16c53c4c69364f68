#!/usr/bin/env bash
# Fetch DuckDB's C library and header (not packaged by Debian 12) from the npm registry into
# third_party/duckdb/ (gitignored): lib/libduckdb.so from @duckdb/node-bindings-linux-x64 and
# include/duckdb.h from the `duckdb` package's source tree, pinned to the same DuckDB release.
# Idempotent: does nothing when the pinned version is already there. Called by scripts/setup.sh;
# CMake finds the result (CELLTYPER_DUCKDB_DIR) and links with an rpath to it.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION="1.4.4"                  # duckdb.h comes from duckdb@$DUCKDB_VERSION
BINDINGS_VERSION="${DUCKDB_VERSION}-r.4"  # libduckdb.so of the same release (node-bindings tag -r.N)
DEST="third_party/duckdb"
STAMP="$DEST/VERSION"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$BINDINGS_VERSION" ] && [ -f "$DEST/lib/libduckdb.so" ] && [ -f "$DEST/include/duckdb.h" ]; then
  echo "fetch_duckdb: DuckDB $BINDINGS_VERSION already in $DEST"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_duckdb: npm is required (apt-get install npm)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
( cd "$WORK" && npm pack --silent "@duckdb/node-bindings-linux-x64@$BINDINGS_VERSION" "duckdb@$DUCKDB_VERSION" >/dev/null )
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
