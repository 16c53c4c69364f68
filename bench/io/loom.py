#!/usr/bin/python3
"""Loom files: annotating a loom file against loading it in Python.

A loom file is written from cells resampled from real pbmc3k cells (bench/io/resample_h5ad, the
file bench/annotate uses), `--cells` of them x pbmc3k's 13,714 genes, by anndata's `write_loom`
(loompy: /matrix genes x cells float32, 64 x 64 chunks, gzip level 2); the same cells as an
.h5ad beside it. Then, in the same run, medians of `--repeats` fresh processes:
  * celltyper: `celltyper annotate` of the loom file with a pbmc3k model, labels to a CSV (every
    cell read, transposed, normalised and classified), and the same command on the .h5ad;
  * the reference: `anndata.read_loom(path)` (loompy reads the matrix, anndata makes it a cells x
    genes CSR matrix): what a Python user runs before any annotation.
Reported: wall seconds and peak RSS of each process, the ratio read_loom / celltyper annotate, and
whether the loom and .h5ad labels agree.

    /usr/bin/python3 bench/io/loom.py [--build build] [--cells 20000] [--repeats 3]

Writes bench/results/loom.json and bench/results/loom.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from measure import git_commit, interleaved_medians, resampled_pbmc3k  # noqa: E402
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

WRITE_LOOM = r"""
import sys, anndata
source, cells, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a = anndata.read_h5ad(source, backed="r")[:cells].to_memory()
a.write_loom(out + ".loom")
a.write_h5ad(out + ".h5ad")
"""

READ_LOOM = r"""
import sys, warnings, anndata
warnings.simplefilter("ignore")
a = anndata.read_loom(sys.argv[1])
print(a.shape[0], a.shape[1], a.X.nnz)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--cells", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/celltyper-bench-loom")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "loom"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    os.makedirs(args.workdir, exist_ok=True)
    source = resampled_pbmc3k(args.build, args.workdir, 100000, PBMC3K)
    stem = os.path.join(args.workdir, f"pbmc{args.cells // 1000}k")
    if not os.path.exists(stem + ".h5ad"):
        subprocess.run(["/usr/bin/python3", "-c", WRITE_LOOM, source, str(args.cells), stem], check=True)
    model = os.path.join(args.workdir, "pbmc3k.model")
    if not os.path.exists(model):
        subprocess.run([celltyper, "train", "-r", PBMC3K, "-l", "obs:celltype", "-o", model, "-q"], check=True)

    labels = {kind: os.path.join(args.workdir, f"labels_{kind}.csv") for kind in ["loom", "h5ad"]}
    commands = {
        "celltyper annotate (loom)": [celltyper, "annotate", "-m", model, "-i", stem + ".loom", "--csv", labels["loom"], "-q"],
        "celltyper annotate (h5ad, same cells)": [celltyper, "annotate", "-m", model, "-i", stem + ".h5ad", "-o",
                                                  os.path.join(args.workdir, "annotated.h5ad"), "--csv", labels["h5ad"], "-q"],
        "anndata.read_loom (loompy)": ["/usr/bin/python3", "-c", READ_LOOM, stem + ".loom"],
    }
    rows = interleaved_medians(commands, args.repeats)
    ratio = rows["anndata.read_loom (loompy)"]["seconds"] / rows["celltyper annotate (loom)"]["seconds"]
    with open(labels["loom"]) as loom, open(labels["h5ad"]) as h5ad:
        same = loom.read() == h5ad.read()
    result = {"commit": git_commit(ROOT), "machine": f"{platform.platform()}, {os.cpu_count()} cores", "cells": args.cells, "genes": 13714,
              "loom_bytes": os.path.getsize(stem + ".loom"), "h5ad_bytes": os.path.getsize(stem + ".h5ad"), "repeats": args.repeats,
              "rows": rows, "ratio_read_loom_over_annotate": ratio, "labels_identical": same}
    with open(args.out + ".json", "w") as out:
        json.dump(result, out, indent=2)
    lines = [
        "# Loom files (bench/io/loom.py)", "",
        f"Command: `/usr/bin/python3 bench/io/loom.py --cells {args.cells} --repeats {args.repeats}`; celltyper {result['commit']}; "
        f"{result['machine']}.", "",
        f"{args.cells} cells resampled from pbmc3k x 13,714 genes, written by anndata's `write_loom` "
        f"({result['loom_bytes'] / 1e6:.0f} MB; the same cells as .h5ad {result['h5ad_bytes'] / 1e6:.0f} MB). "
        f"Medians of {args.repeats} fresh processes; annotate with a pbmc3k model (default flags), labels to a CSV.", "",
        "| command | seconds | peak RSS (MB) |", "|---|---:|---:|"]
    for label, row in rows.items():
        lines.append(f"| {label} | {row['seconds']:.2f} | {row['peak_rss_mb']:.0f} |")
    lines += ["", f"anndata.read_loom / celltyper annotate (loom): **{ratio:.1f}x**; loom and .h5ad labels and scores "
              f"{'identical' if same else 'DIFFERENT'}."]
    with open(args.out + ".md", "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
