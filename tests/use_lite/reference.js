// Reference vectors of the Universal Sentence Encoder Lite package, computed by the package's own
// JavaScript (the @energetic-ai/embeddings tokenizer and the TF.js graph model), for
// tests/test_use_lite.cpp to compare celltyper's C++ encoder against.
//
//   node tests/use_lite/reference.js MODEL_DIR TEXTS.jsonl OUT.jsonl
//
// MODEL_DIR holds model.json, its weight shards and vocab.json (third_party/use-lite/, fetched by
// scripts/fetch_use_lite.sh). TEXTS.jsonl: one JSON string per line. OUT.jsonl: per text
// {"ids": [...], "first": [...512 floats...], "windows": [...512 floats...]} (null vectors for a
// text of no token): `first` is what the
// package returns for the text (the model clips at 128 tokens); `windows` is the encoding of every
// consecutive 128-token window, averaged with the windows' token counts as weights and
// L2-normalised (what celltyper does with long texts). Needs @energetic-ai/core and
// @energetic-ai/embeddings (0.2.0) on NODE_PATH (scripts/test.sh installs them).
"use strict";
const fs = require("fs");
const path = require("path");
const core = require("@energetic-ai/core");
const embeddings = require("@energetic-ai/embeddings");

const kWindow = 128;

async function main() {
  const [modelDir, textsPath, outPath] = process.argv.slice(2);
  if (!outPath) throw new Error("usage: reference.js MODEL_DIR TEXTS.jsonl OUT.jsonl");
  const source = async () => {
    const model = await core.loadGraphModel(`file://${path.resolve(modelDir)}/model.json`);
    const vocabulary = JSON.parse(fs.readFileSync(path.join(modelDir, "vocab.json"), "utf-8"));
    return { model, vocabulary };
  };
  const encoder = await embeddings.initModel(source);
  const texts = fs.readFileSync(textsPath, "utf-8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line));
  const run = async (ids) => {
    const indices = core.tensor2d(ids.map((_, i) => [0, i]), [ids.length, 2], "int32");
    const values = core.tensor1d(ids, "int32");
    const output = await encoder.model.executeAsync({ indices, values });
    const vector = (await output.array())[0];
    indices.dispose();
    values.dispose();
    output.dispose();
    return vector;
  };
  const lines = [];
  for (const text of texts) {
    const ids = encoder.tokenizer.encode(text);
    if (ids.length === 0) {  // the model cannot encode no token; celltyper gives such texts no vector
      lines.push(JSON.stringify({ ids, first: null, windows: null }));
      continue;
    }
    const first = await encoder.embed(text);
    const sum = new Array(first.length).fill(0);
    for (let start = 0; start < ids.length; start += kWindow) {
      const window = ids.slice(start, start + kWindow);
      const vector = await run(window);
      for (let d = 0; d < sum.length; ++d) sum[d] += vector[d] * window.length;
    }
    const norm = Math.sqrt(sum.reduce((total, x) => total + x * x, 0));
    const windows = sum.map((x) => (norm > 0 ? x / norm : 0));
    lines.push(JSON.stringify({ ids, first, windows }));
  }
  fs.writeFileSync(outPath, lines.join("\n") + "\n");
  console.error(`reference.js: ${texts.length} texts, backend ${core.getBackend()}`);
}

main().catch((error) => {
  console.error(`reference.js: ${error.message}`);
  process.exit(1);
});
