#!/usr/bin/env python3
"""Gene-embedding benchmark: celltyper's LSA backend against scikit-learn on all human genes.

Both embed the *same* gene texts (written by `celltyper genes text` from
../shared/data/gene-annotations: symbol, name, type, RefSeq summary, GO BP/MF/CC term names):

* celltyper: `celltyper genes embed --backend lsa --dims D` (its own tokeniser, TF-IDF with
  sublinear tf + smoothed idf + L2 rows, randomised SVD with q power iterations, rows of U*S
  L2-normalised). Wall time and peak RSS from /usr/bin/time -v; median of --reps runs after
  one warm-up run.
* scikit-learn: TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words='english') — its own
  tokeniser (token_pattern r"(?u)\\b\\w\\w+\\b", so "T-cell" -> "cell", no "t"; "IL-2" -> "il"), the
  same min_df and idf formula — then TruncatedSVD(algorithm='randomized', n_oversamples=10,
  random_state=0) with n_iter=5 (its default) and with n_iter=2 (celltyper's default q), rows of
  U*S L2-normalised. Run in a subprocess of this script under /usr/bin/time -v (one run each: a
  1024-d fit takes minutes).
* random: i.i.d. Gaussian vectors (seed 0), the floor.

Quality, at d = 64, 256, 1024 (prefixes of one 1024-d fit, re-normalised; every method on the
same genes: those celltyper embeds):
(a) marker pairs: for each ordered pair (query, partner) of CD3D/CD3E/CD3G, CD79A/CD79B,
    MS4A1/CD19, LYZ/CD14, NKG7/GNLY, PPBP/PF4, INS/GCG/SST, the rank of the partner among all
    genes by cosine to the query (1 = nearest); the median over pairs is reported.
(b) GO BP agreement: for a fixed random sample (seed 0) of 2000 genes with a GO BP annotation
    (evidence not ND, root term excluded), the fraction of their top-10 neighbours that share at
    least one BP term with them. Caveat: the texts contain the GO term names, so (b) partly
    measures how well each method keeps what is in its input; it is comparable across methods,
    not an independent biological validation.

Usage:
    /usr/bin/python3 bench/genes/run.py [--celltyper build/celltyper] [--dims 1024] [--reps 3]
        [--threads 0] [--skip-sklearn] [--out bench/results]
Writes bench/results/genes.json and bench/results/genes.md.
"""
import argparse
import csv
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "..", "shared", "data", "gene-annotations")
MARKER_GROUPS = [["CD3D", "CD3E", "CD3G"], ["CD79A", "CD79B"], ["MS4A1", "CD19"], ["LYZ", "CD14"],
                 ["NKG7", "GNLY"], ["PPBP", "PF4"], ["INS", "GCG", "SST"]]
ROOT_TERMS = {"GO:0008150", "GO:0003674", "GO:0005575"}
csv.field_size_limit(1 << 30)


def timed(argv, env=None):
    """Run argv under /usr/bin/time -v; return (wall seconds, peak RSS MiB, stderr, stdout)."""
    result = subprocess.run(["/usr/bin/time", "-v"] + argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", result.stderr).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return seconds, rss_kib / 1024, result.stderr, result.stdout


def read_texts(path):
    ids, texts = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or line.startswith("entrez_id\t"):
                continue
            entrez, _symbol, text = line.rstrip("\n").split("\t", 2)
            ids.append(int(entrez))
            texts.append(text)
    return np.array(ids, dtype=np.int64), texts


def sklearn_worker(texts_path, out_path, dims, n_iter):
    """Fit TF-IDF + TruncatedSVD on the texts; save entrez ids and U*S rows (normalised)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    ids, texts = read_texts(texts_path)
    keep = [i for i, text in enumerate(texts) if text]
    start = time.perf_counter()
    matrix = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english").fit_transform([texts[i] for i in keep])
    tfidf_seconds = time.perf_counter() - start
    start = time.perf_counter()
    embedding = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=n_iter, random_state=0).fit_transform(matrix)
    svd_seconds = time.perf_counter() - start
    norms = np.linalg.norm(embedding, axis=1)
    good = norms > 1e-9 * norms.max()
    embedding = (embedding[good] / norms[good, None]).astype(np.float32)
    np.savez(out_path, ids=ids[keep][good], matrix=embedding)
    print(json.dumps({"tfidf_seconds": tfidf_seconds, "svd_seconds": svd_seconds, "n_terms": matrix.shape[1],
                      "nnz": int(matrix.nnz)}))


def load_store(path):
    import h5py
    with h5py.File(path, "r") as handle:
        return handle["genes/entrez_id"][:], handle["embeddings"][:], [s.decode() if isinstance(s, bytes) else s
                                                                      for s in handle["genes/symbol"][:]]


def align(ids, matrix, universe):
    """Rows of `matrix` for the Entrez ids in `universe` (missing genes: zero rows)."""
    position = {int(e): i for i, e in enumerate(ids)}
    out = np.zeros((len(universe), matrix.shape[1]), dtype=np.float32)
    for row, entrez in enumerate(universe):
        if int(entrez) in position:
            out[row] = matrix[position[int(entrez)]]
    return out


def prefix(matrix, k):
    part = matrix[:, :k].astype(np.float32)
    norms = np.linalg.norm(part, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return part / norms


def marker_ranks(matrix, symbols):
    row_of = {s: i for i, s in enumerate(symbols)}
    ranks = {}
    for group in MARKER_GROUPS:
        for query in group:
            for partner in group:
                if query == partner or query not in row_of or partner not in row_of:
                    continue
                sims = matrix @ matrix[row_of[query]]
                sims[row_of[query]] = -np.inf
                ranks[f"{query}->{partner}"] = int((sims > sims[row_of[partner]]).sum()) + 1
    return ranks


def go_bp_sets(universe):
    terms = {}
    with open(os.path.join(DATA, "human_gene2go.tsv"), encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["ontology"] != "BP" or row["evidence"] == "ND" or row["go_id"] in ROOT_TERMS:
                continue
            terms.setdefault(int(row["entrez_id"]), set()).add(row["go_id"])
    return [terms.get(int(e), set()) for e in universe]


def go_agreement(matrix, bp_sets, sample, k=10):
    shared = 0
    total = 0
    for start in range(0, len(sample), 250):
        queries = sample[start:start + 250]
        sims = matrix[queries] @ matrix.T
        sims[np.arange(len(queries)), queries] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for query, neighbours in zip(queries, top):
            for neighbour in neighbours:
                shared += bool(bp_sets[query] & bp_sets[neighbour])
                total += 1
    return shared / total


def machine_info():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sklearn
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "sklearn": sklearn.__version__, "platform": platform.platform(),
            "load_average_1min_at_end": os.getloadavg()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celltyper", default=os.path.join(ROOT, "build", "celltyper"))
    parser.add_argument("--dims", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--sklearn-n-iter", default="5,2", help="TruncatedSVD n_iter values to run (comma-separated)")
    parser.add_argument("--sklearn-worker", nargs=4, metavar=("TEXTS", "OUT", "DIMS", "N_ITER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sklearn_worker:
        texts, out, dims, n_iter = args.sklearn_worker
        sklearn_worker(texts, out, int(dims), int(n_iter))
        return
    if not os.path.exists(os.path.join(DATA, "human_genes.tsv")):
        sys.exit(f"{DATA} is absent")
    work = tempfile.mkdtemp(prefix="celltyper-genes-bench-")
    try:
        texts = os.path.join(work, "texts.tsv")
        table = os.path.join(DATA, "human_genes.tsv")
        text_seconds, text_rss, _, _ = timed([args.celltyper, "genes", "text", "--gene-table", table, "--go-tsv",
                                           os.path.join(DATA, "human_gene2go.tsv"), "--go-terms",
                                           os.path.join(DATA, "go_terms.tsv"), "--out", texts])
        print(f"texts: {text_seconds:.1f} s, {text_rss:.0f} MiB", file=sys.stderr)

        store = os.path.join(work, "lsa.h5")
        embed = [args.celltyper, "genes", "embed", "--backend", "lsa", "--gene-table", table, "--texts", texts,
                 "--dims", str(args.dims), "--threads", str(args.threads), "--out", store]
        runs = []
        for rep in range(args.reps + 1):  # the first is a warm-up
            seconds, rss, log, _ = timed(embed)
            print(f"celltyper embed run {rep}: {seconds:.1f} s, {rss:.0f} MiB", file=sys.stderr)
            if rep > 0:
                runs.append({"wall_seconds": seconds, "peak_rss_mib": rss})
        svd_line = re.search(r"randomised SVD done \(([\d.]+) s\)", log)
        tfidf_line = re.search(r"TF-IDF: (\d+) texts, (\d+) terms .*?, (\d+) non-zeros \(([\d.]+) s\)", log)
        celltyper = {
            "wall_seconds_median": float(np.median([r["wall_seconds"] for r in runs])),
            "peak_rss_mib_median": float(np.median([r["peak_rss_mib"] for r in runs])),
            "runs": runs,
            "svd_seconds_last": float(svd_line.group(1)) if svd_line else None,
            "tfidf_seconds_last": float(tfidf_line.group(4)) if tfidf_line else None,
            "n_terms": int(tfidf_line.group(2)) if tfidf_line else None,
            "nnz": int(tfidf_line.group(3)) if tfidf_line else None,
            "command": " ".join(os.path.basename(a) if a.startswith(work) else a for a in embed[1:]),
        }
        ids, matrix, symbols = load_store(store)
        universe = ids
        methods = {"celltyper LSA": matrix}

        sklearn = {}
        if not args.skip_sklearn:
            for n_iter in [int(v) for v in args.sklearn_n_iter.split(",") if v]:
                out = os.path.join(work, f"sklearn{n_iter}.npz")
                seconds, rss, _, stdout = timed([sys.executable, os.path.abspath(__file__), "--sklearn-worker", texts, out,
                                                 str(args.dims), str(n_iter)])
                run = {"n_iter": n_iter, "wall_seconds": seconds, "peak_rss_mib": rss}
                run.update(json.loads(stdout.strip().splitlines()[-1]))
                sklearn[f"n_iter={n_iter}"] = run
                print(f"sklearn n_iter={n_iter}: {seconds:.1f} s, {rss:.0f} MiB", file=sys.stderr)
                loaded = np.load(out)
                methods[f"scikit-learn n_iter={n_iter}"] = align(loaded["ids"], loaded["matrix"], universe)
        rng = np.random.default_rng(0)
        methods["random"] = rng.standard_normal((len(universe), args.dims)).astype(np.float32)

        bp_sets = go_bp_sets(universe)
        annotated = [i for i, terms in enumerate(bp_sets) if terms]
        sample = sorted(random.Random(0).sample(annotated, min(2000, len(annotated))))
        quality = {}
        for name, full in methods.items():
            quality[name] = {}
            for k in sorted({64, 256, 1024, args.dims}):
                if k > args.dims:
                    continue
                part = prefix(full, k)
                ranks = marker_ranks(part, symbols)
                values = np.array(list(ranks.values()), dtype=float)
                quality[name][str(k)] = {
                    "marker_ranks": ranks,
                    "marker_rank_median": float(np.median(values)),
                    "marker_rank_geometric_mean": float(np.exp(np.log(values).mean())),
                    "marker_hits_at_10": float((values <= 10).mean()),
                    "go_bp_top10_shared": go_agreement(part, bp_sets, np.array(sample)),
                }
                print(f"{name} d={k}: median marker rank {quality[name][str(k)]['marker_rank_median']:.0f}, "
                      f"GO BP top-10 {quality[name][str(k)]['go_bp_top10_shared']:.3f}", file=sys.stderr)
        result = {
            "benchmark": "genes",
            "machine": machine_info(),
            "data": {"texts": "celltyper genes text over ../shared/data/gene-annotations (human_genes.tsv summaries, "
                              "human_gene2go.tsv + go_terms.tsv)", "n_genes": int(len(universe)),
                     "n_go_bp_annotated": len(annotated), "go_sample": len(sample)},
            "text_build": {"wall_seconds": text_seconds, "peak_rss_mib": text_rss},
            "dims": args.dims,
            "celltyper": celltyper,
            "sklearn": sklearn,
            "quality": quality,
        }
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "genes.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        with open(os.path.join(args.out, "genes.md"), "w") as handle:
            handle.write(render_markdown(result))
        print(render_markdown(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render_markdown(result):
    lines = ["# Gene embeddings: celltyper LSA vs scikit-learn", "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores, shared: 1-min load average "
             f"{result['machine']['load_average_1min_at_end']:.1f} at the end); scikit-learn "
             f"{result['machine']['sklearn']}, numpy {result['machine']['numpy']}.", "",
             f"Texts: {result['data']['n_genes']} human genes (`celltyper genes text`, "
             f"{result['text_build']['wall_seconds']:.1f} s). Embedding: {result['dims']} dims.", "",
             "| | wall (s) | peak RSS (MiB) |", "|---|---:|---:|"]
    c = result["celltyper"]
    lines.append(f"| celltyper genes embed (median of {len(c['runs'])}) | {c['wall_seconds_median']:.1f} | "
                 f"{c['peak_rss_mib_median']:.0f} |")
    for name, s in (result["sklearn"] or {}).items():
        lines.append(f"| scikit-learn TfidfVectorizer + TruncatedSVD {name} (1 run) | {s['wall_seconds']:.1f} | "
                     f"{s['peak_rss_mib']:.0f} |")
    lines += ["", f"celltyper: TF-IDF {c['tfidf_seconds_last']:.1f} s + randomised SVD {c['svd_seconds_last']:.1f} s "
                  f"({c['n_terms']} terms, {c['nnz']} non-zeros; q = 2 power iterations)."]
    for name, s in (result["sklearn"] or {}).items():
        lines.append(f"Speed-up over scikit-learn {name}: {s['wall_seconds'] / c['wall_seconds_median']:.1f}x "
                     f"(its TF-IDF {s['tfidf_seconds']:.1f} s + SVD {s['svd_seconds']:.1f} s).")
    lines += ["", "Quality (prefixes of the one fit; same genes for every method). Median rank of the marker partner "
                  "(lower is better) and fraction of top-10 neighbours sharing a GO BP term (higher is better):", "",
              "| method | d | median marker rank | geometric mean rank | pairs with rank <= 10 | GO BP top-10 shared |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, per_dims in result["quality"].items():
        for k, values in per_dims.items():
            lines.append(f"| {name} | {k} | {values['marker_rank_median']:.1f} | {values['marker_rank_geometric_mean']:.1f} | "
                         f"{values['marker_hits_at_10']:.2f} | {values['go_bp_top10_shared']:.3f} |")
    lines += ["", "Marker ranks at the largest d:", "", "| pair | " + " | ".join(result["quality"]) + " |",
              "|---|" + "---:|" * len(result["quality"])]
    top = str(result["dims"])
    pairs = list(next(iter(result["quality"].values()))[top]["marker_ranks"])
    for pair in pairs:
        lines.append(f"| {pair} | " + " | ".join(str(result["quality"][m][top]["marker_ranks"].get(pair, "-"))
                                               for m in result["quality"]) + " |")
    lines += ["", "Notes: scikit-learn uses its own tokeniser and English stop words on the same texts; "
                  "GO BP agreement is partly circular (the texts contain GO term names). See bench/genes/run.py.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
