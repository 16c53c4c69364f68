#!/usr/bin/python3
"""References stored only as log-normalised values: what reading their counts back gives and costs.

`celltyper train` reads a reference's counts back from log1p(CP10k) values (recovered_counts.hpp)
so that it trains as its counts do (depth augmentation included). This bench, default settings
throughout:

  * accuracy: pbmc3k written as log1p(CP10k) only (no counts anywhere) and as its counts; each
    trains a model, which annotates pbmc3k thinned binomially to 1,000 counts per cell (seed 0):
    accuracy against the Seurat labels and the share of cells flagged unlike every reference type;
  * cost: `train` on N cells resampled from pbmc3k (bench/io/resample_h5ad, seed 42), as counts and
    as log1p(CP10k), medians of interleaved runs (wall seconds; no peak RSS: the children forked
    from this Python process, which holds the resampled cells, would report its own).

With `--before BUILD` (a folder holding an earlier `celltyper`, e.g. one built from session 29's
commit) the log reference is also trained by it in the same run: the reference figures.

    /usr/bin/python3 bench/train/log_reference.py [--build build] [--before DIR] [--cells 100000] [--repeats 2]

Writes bench/results/log_reference.{json,md}.
"""
import argparse
import json
import os
import sys
import time

import anndata
import numpy as np
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

PBMC3K = os.path.join(ROOT, "..", "shared", "data", "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")


def log1p_cp10k(path, out):
    """The file's counts written as log1p(CP10k) in X, float32, nothing else kept."""
    a = anndata.read_h5ad(path)
    x = sp.csr_matrix(a.X, dtype=np.float64)
    x = sp.csr_matrix(sp.diags(1e4 / np.asarray(x.sum(axis=1)).ravel()) @ x)
    x.data = np.log1p(x.data)
    a.X = x.astype(np.float32)
    a.raw = None
    a.write_h5ad(out)


def thinned(path, out, total, seed=0):
    """Each cell's counts thinned binomially to about `total` (cells below it kept)."""
    a = anndata.read_h5ad(path)
    a.X = measure.thinned_counts(a.X, total, seed)
    a.write_h5ad(out)


def score(binary, reference, query, workdir, tag):
    model = os.path.join(workdir, f"{tag}.model")
    measure.run_timed([binary, "-q", "train", "-r", reference, "-l", "obs:celltype", "-o", model], "log_reference")
    out = os.path.join(workdir, f"{tag}.h5ad")
    measure.run_timed([binary, "-q", "annotate", "-m", model, "-i", query, "-o", out], "log_reference")
    obs = anndata.read_h5ad(out, backed="r").obs
    return {"accuracy": float((obs["celltyper_label"].astype(str) == obs["celltype"].astype(str)).mean()),
            "flagged": float(obs["celltyper_unlike_reference"].astype(bool).mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", help="folder holding an earlier celltyper binary (the reference run)")
    parser.add_argument("--cells", type=int, default=100000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/celltyper-bench-log-reference")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "log_reference"))
    args = parser.parse_args()
    if not os.path.exists(PBMC3K):
        sys.exit(f"log_reference: {PBMC3K} is missing (../shared/data)")
    started = time.perf_counter()
    os.makedirs(args.workdir, exist_ok=True)
    binaries = {"now": os.path.join(args.build, "celltyper")}
    if args.before:
        binaries["before"] = os.path.join(args.before, "celltyper")

    log_ref = os.path.join(args.workdir, "pbmc3k_log1p.h5ad")
    query = os.path.join(args.workdir, "pbmc3k_thinned_1000.h5ad")
    log1p_cp10k(PBMC3K, log_ref)
    thinned(PBMC3K, query, 1000)
    accuracy = {}
    for name, binary in binaries.items():
        accuracy[f"{name}: counts reference"] = score(binary, PBMC3K, query, args.workdir, f"{name}_counts")
        accuracy[f"{name}: log1p(CP10k) reference"] = score(binary, log_ref, query, args.workdir, f"{name}_log")

    counts_big = measure.resampled_pbmc3k(args.build, args.workdir, args.cells, PBMC3K)
    log_big = os.path.join(args.workdir, f"pbmc{args.cells // 1000}k_log1p.h5ad")
    if not os.path.exists(log_big):
        log1p_cp10k(counts_big, log_big)
    commands = {}
    for name, binary in binaries.items():
        if name == "now":
            commands["now: counts"] = [binary, "-q", "train", "-r", counts_big, "-l", "obs:celltype", "-o", os.path.join(args.workdir, "t_counts.model")]
        commands[f"{name}: log1p(CP10k)"] = [binary, "-q", "train", "-r", log_big, "-l", "obs:celltype",
                                             "-o", os.path.join(args.workdir, f"t_{name}_log.model")]
    timing = measure.interleaved_medians(commands, args.repeats)
    base = timing["now: counts"]["seconds"]

    results = {"commit": measure.git_commit(ROOT), "cells": args.cells, "repeats": args.repeats, "accuracy": accuracy, "train": timing,
               "seconds": time.perf_counter() - started}
    with open(args.out + ".json", "w") as handle:
        json.dump(results, handle, indent=2)
    lines = ["# References stored as log-normalised values (bench/train/log_reference.py)", "",
             f"Command: `/usr/bin/python3 bench/train/log_reference.py{' --before DIR' if args.before else ''}`; celltyper "
             f"{results['commit']}; {results['seconds']:.0f} s on {os.cpu_count()} cores. Default `train` and `annotate`.", "",
             "pbmc3k as its counts or as log1p(CP10k) only -> pbmc3k thinned to 1,000 counts per cell (Seurat labels):", "",
             "| binary: reference | accuracy | flagged unlike every type |", "|---|---|---|"]
    lines += [f"| {label} | {row['accuracy']:.3f} | {row['flagged']:.3f} |" for label, row in accuracy.items()]
    lines += ["", f"`train` on {args.cells} cells resampled from pbmc3k, medians of {args.repeats} interleaved runs:", "",
              "| binary: reference | seconds | ratio to now: counts |", "|---|---|---|"]
    lines += [f"| {label} | {row['seconds']:.1f} | {row['seconds'] / base:.2f} |" for label, row in timing.items()]
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
