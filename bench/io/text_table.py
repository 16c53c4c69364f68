#!/usr/bin/python3
"""Text count tables: reading a GEO-style table (genes x cells, tab-separated) into cells x genes.

A table is written from cells resampled from real pbmc3k cells (bench/io/resample_h5ad, the file
bench/annotate uses), `--cells` of them x pbmc3k's 13,714 genes, as pandas' to_csv writes it
(tab-separated, a corner field; plain and gzip). Then, in the same run, medians of `--repeats`
fresh processes:
  * celltyper: `celltyper inspect TABLE` (the whole table parsed into a cells x genes CSR matrix,
    oriented, and every value scanned), and `celltyper annotate` of the table with a pbmc3k model
    (labels to a CSV), read to write;
  * the reference: pandas `read_csv(sep='\t', index_col=0)` (C engine) then the transposed values
    as a SciPy CSR matrix: what a Python user runs to load such a table.
Reported: wall seconds and peak RSS of each process, and the ratio pandas / celltyper.

    /usr/bin/python3 bench/io/text_table.py [--build build] [--cells 5000] [--repeats 3]

Writes bench/results/text_table.json and bench/results/text_table.md.
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

WRITE_TABLE = r"""
import sys, anndata, numpy as np, pandas as pd
source, cells, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a = anndata.read_h5ad(source, backed="r")[:cells].to_memory()
frame = pd.DataFrame(a.X.toarray().astype(np.int32).T, index=a.var_names, columns=a.obs_names)
frame.to_csv(out, sep="\t")
frame.to_csv(out + ".gz", sep="\t")
"""

PANDAS_READ = r"""
import sys, pandas as pd, scipy.sparse as sp
frame = pd.read_csv(sys.argv[1], sep="\t", index_col=0)
matrix = sp.csr_matrix(frame.values.T)
print(matrix.shape[0], matrix.shape[1], matrix.nnz)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/celltyper-bench-text")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "text_table"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    os.makedirs(args.workdir, exist_ok=True)
    source = resampled_pbmc3k(args.build, args.workdir, 100000, PBMC3K)
    table = os.path.join(args.workdir, f"geo{args.cells // 1000}k.tsv")
    if not os.path.exists(table + ".gz"):
        subprocess.run(["/usr/bin/python3", "-c", WRITE_TABLE, source, str(args.cells), table], check=True)
    model = os.path.join(args.workdir, "pbmc3k.model")
    if not os.path.exists(model):
        subprocess.run([celltyper, "train", "-r", PBMC3K, "-l", "obs:celltype", "-o", model, "-q"], check=True)

    rows = {}
    for name, path in [("plain", table), ("gzip", table + ".gz")]:
        commands = {
            f"celltyper inspect ({name})": [celltyper, "inspect", path],
            f"celltyper annotate ({name})": [celltyper, "annotate", "-m", model, "-i", path, "--csv", os.path.join(args.workdir, "labels.csv"), "-q"],
            f"pandas read_csv + CSR ({name})": ["/usr/bin/python3", "-c", PANDAS_READ, path],
        }
        rows.update(interleaved_medians(commands, args.repeats))
    for name in ["plain", "gzip"]:
        rows[f"ratio pandas / celltyper inspect ({name})"] = rows[f"pandas read_csv + CSR ({name})"]["seconds"] / rows[f"celltyper inspect ({name})"]["seconds"]
    result = {"commit": git_commit(ROOT), "machine": f"{platform.platform()}, {os.cpu_count()} cores", "cells": args.cells, "genes": 13714,
              "table_bytes": os.path.getsize(table), "gzip_bytes": os.path.getsize(table + ".gz"), "repeats": args.repeats, "rows": rows}
    with open(args.out + ".json", "w") as out:
        json.dump(result, out, indent=2)
    lines = [
        "# Text count tables (bench/io/text_table.py)", "",
        f"Command: `/usr/bin/python3 bench/io/text_table.py --cells {args.cells} --repeats {args.repeats}`; celltyper {result['commit']}; "
        f"{result['machine']}.", "",
        f"A GEO-style table: 13,714 genes x {args.cells} cells resampled from pbmc3k, tab-separated as pandas writes it "
        f"({result['table_bytes'] / 1e6:.0f} MB; gzip {result['gzip_bytes'] / 1e6:.0f} MB). Medians of {args.repeats} fresh processes.", "",
        "| command | seconds | peak RSS (MB) |", "|---|---:|---:|"]
    for label, row in rows.items():
        if label.startswith("ratio"):
            continue
        lines.append(f"| {label} | {row['seconds']:.2f} | {row['peak_rss_mb']:.0f} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    for label, value in rows.items():
        if label.startswith("ratio"):
            lines.append(f"| {label} | {value:.1f}x |")
    with open(args.out + ".md", "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
