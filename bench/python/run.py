#!/usr/bin/python3
"""Python API benchmark: `celltyper.annotate(adata, model=...)` on an in-memory AnnData.

A 100k-cell h5ad resampled from real pbmc3k cells (build/bench/resample_h5ad) is annotated with the
default model (`celltyper train` on pbmc3k, no flags) by, in the same run:
  * `celltyper annotate` on the file (read to write);
  * `celltyper.annotate(adata, model=...)` on the AnnData already in memory (X CSR float32): wall
    time of the call, and how much the process's peak RSS grows during it (VmHWM reset through
    /proc/self/clear_refs after loading) against the bytes of X (goal: < 10%: X is not copied);
  * CellTypist's method in Python: scikit-learn logistic regression (trained on pbmc3k log1p-CP10k,
    the model's panel genes) predicting the same in-memory cells, with its normalisation.
Median of --repeats runs, each in a fresh process.

    /usr/bin/python3 bench/python/run.py [--cells 100000] [--repeats 3]

Writes bench/results/python.json and bench/results/python.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

MEASURE = r"""
import json, os, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
mode, query, model_path, reference, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
import anndata, numpy as np, scipy.sparse as sp
adata = anndata.read_h5ad(query)
X = adata.X
x_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
if mode == "celltyper":
    import celltyper
    model = celltyper.load_model(model_path)
    # The first call in a process also loads the gene table (~100 MB, kept for later calls): a
    # warm-up on 1,000 cells, so that the measured call shows what annotating costs per X.
    t0 = time.perf_counter()
    celltyper.annotate(adata[:1000].copy(), model=model, threads=threads)
    first_call = time.perf_counter() - t0
    reset_peak(); before = rss("VmRSS:")
    t0 = time.perf_counter()
    result = celltyper.annotate(adata, model=model, threads=threads)
    seconds = time.perf_counter() - t0
    labels = adata.obs["celltyper_label"].astype(str).to_numpy()
else:
    first_call = None
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from sklearn.linear_model import LogisticRegression
    import celltyper
    panel = celltyper.load_model(model_path).panel
    ref = anndata.read_h5ad(reference)
    def features(a):
        Y = sp.csr_matrix(a.X, dtype=np.float32)
        totals = np.asarray(Y.sum(axis=1)).ravel()
        Y = sp.csr_matrix(sp.diags((1e4 / np.maximum(totals, 1)).astype(np.float32)) @ Y)
        Y.data = np.log1p(Y.data)
        where = {g: i for i, g in enumerate(a.var_names)}
        cols = [where[g] for g in panel if g in where]
        return Y[:, cols]
    clf = LogisticRegression(max_iter=1000).fit(features(ref), ref.obs["celltype"].astype(str).to_numpy())
    reset_peak(); before = rss("VmRSS:")
    t0 = time.perf_counter()
    labels = clf.predict(features(adata))
    seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "first_call_1000_cells_seconds": first_call, "rss_before_mb": before, "peak_mb": rss("VmHWM:"), "x_mb": x_mb,
                  "labels": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}}))
"""


def run_cli(command):
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr}")
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def run_python(mode, query, model, threads, env):
    result = subprocess.run(["/usr/bin/python3", "-c", MEASURE, mode, query, model, PBMC3K, str(threads)], capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        sys.exit(f"python {mode} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "python"))
    args = parser.parse_args()
    if not os.path.exists(PBMC3K):
        sys.exit(f"{PBMC3K} not found: this benchmark needs ../shared/data")
    celltyper_cli = os.path.join(args.build, "celltyper")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    for needed in (celltyper_cli, resample, os.path.join(args.build, "python", "celltyper", "__init__.py")):
        if not os.path.exists(needed):
            sys.exit(f"{needed} not found: run scripts/setup.sh and scripts/test.sh first")
    env = dict(os.environ, PYTHONPATH=os.path.join(args.build, "python"))
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = {"cli": [], "celltyper": [], "sklearn": []}
    with tempfile.TemporaryDirectory() as tmp:
        query = os.path.join(tmp, "query.h5ad")
        subprocess.run([resample, PBMC3K, query, str(args.cells)], check=True, capture_output=True)
        model = os.path.join(tmp, "model.h5")
        subprocess.run([celltyper_cli, "--quiet", "train", "--reference", PBMC3K, "--label", "obs:celltype", "--out", model], check=True)
        for _ in range(args.repeats):
            seconds, peak = run_cli([celltyper_cli, "--quiet", "annotate", "--model", model, "--input", query, "--threads", str(args.threads),
                                     "--out", os.path.join(tmp, "out.h5ad")])
            rows["cli"].append({"seconds": seconds, "peak_mb": peak})
            rows["celltyper"].append(run_python("celltyper", query, model, args.threads, env))
            rows["sklearn"].append(run_python("sklearn", query, model, args.threads, env))
    med = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "labels" and runs[0][key] is not None}
           for name, runs in rows.items()}
    x_mb = med["celltyper"]["x_mb"]
    growth = med["celltyper"]["peak_mb"] - med["celltyper"]["rss_before_mb"]
    sk_growth = med["sklearn"]["peak_mb"] - med["sklearn"]["rss_before_mb"]
    summary = {"commit": commit, "cells": args.cells, "repeats": args.repeats, "threads": args.threads, "machine": platform.platform(),
               "cpus": os.cpu_count(), "median": med, "x_mb": x_mb, "celltyper_growth_mb": growth, "sklearn_growth_mb": sk_growth,
               "growth_share_of_x": growth / x_mb, "runs": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(summary, f, indent=2)
    lines = [f"# Python API: annotate {args.cells} in-memory cells (resampled from pbmc3k)", "",
             f"Commit `{commit}`; {platform.platform()}, {os.cpu_count()} cores; threads {args.threads}; median of {args.repeats} runs, "
             "each in a fresh process. Reproduce: `/usr/bin/python3 bench/python/run.py`.", "",
             "Default model: `celltyper train --reference pbmc3k --label obs:celltype` (expression features, logistic regression). "
             f"X: CSR float32, {x_mb:.0f} MB (data + indices + indptr).", "",
             "| run | wall s | peak RSS growth during the call, MB | share of X |", "|---|---:|---:|---:|",
             f"| `celltyper.annotate(adata, model=...)` (in memory, inplace) | {med['celltyper']['seconds']:.2f} | {growth:.0f} | "
             f"{100 * growth / x_mb:.1f}% |",
             f"| `celltyper annotate` CLI (file read to file written; peak RSS of the process) | {med['cli']['seconds']:.2f} | "
             f"{med['cli']['peak_mb']:.0f} (whole process) | |",
             f"| scikit-learn LogisticRegression predict (CellTypist's method, normalisation included) | {med['sklearn']['seconds']:.2f} | "
             f"{sk_growth:.0f} | {100 * sk_growth / x_mb:.1f}% |", "",
             f"The measured `celltyper.annotate` call follows a warm-up call on 1,000 cells in the same process "
             f"({med['celltyper']['first_call_1000_cells_seconds']:.2f} s), which loads the gene table once (about 100 MB, kept for "
             "later calls); the growth above is what annotating the 100k cells adds.", "",
             f"Ratios: scikit-learn / celltyper.annotate wall = {med['sklearn']['seconds'] / med['celltyper']['seconds']:.2f}x; "
             f"CLI / celltyper.annotate wall = {med['cli']['seconds'] / med['celltyper']['seconds']:.2f}x.", ""]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
