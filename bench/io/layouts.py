#!/usr/bin/python3
"""The same cells stored by row (CSR) and by column (CSC): `inspect` and default `annotate` on
each, against what a Python user pays to get rows out of the CSC file (anndata's read_h5ad, then
X.tocsr()), same machine, same script.

A CSC matrix scatters each cell over every column, so celltyper gathers windows of cells (up to
256 MB) in one pass over the columns each (session 40; before, one pass per block of rows).
The cells are pbmc3k's, resampled by bench/io/resample_h5ad (CSR), then written as CSC by anndata;
the model is a default `train` on pbmc3k. Labels must be identical across layouts.

    /usr/bin/python3 bench/io/layouts.py [--build build] [--cells 200000] [--repeats 3]
                                         [--workdir /tmp/celltyper-layouts]

Writes bench/results/layouts.json and bench/results/layouts.md.
"""
import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

ANNDATA_ROWS = r"""
import sys, time, json, resource
import anndata
t = time.perf_counter()
a = anndata.read_h5ad(sys.argv[1])
rows = a.X.tocsr()
print(json.dumps({"seconds": time.perf_counter() - t, "nnz": int(rows.nnz),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

WRITE_CSC = r"""
import sys, anndata
a = anndata.read_h5ad(sys.argv[1])
a.X = a.X.tocsc()
a.write_h5ad(sys.argv[2])
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--cells", type=int, default=200000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/celltyper-layouts")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "layouts"))
    args = parser.parse_args()
    if not os.path.exists(PBMC3K):
        sys.exit(f"{PBMC3K}: missing (../shared/data)")
    binary = os.path.join(args.build, "celltyper")
    os.makedirs(args.workdir, exist_ok=True)
    csr = measure.resampled_pbmc3k(args.build, args.workdir, args.cells, PBMC3K)
    csc = csr.replace(".h5ad", "_csc.h5ad")
    if not os.path.exists(csc):
        subprocess.run(["/usr/bin/python3", "-c", WRITE_CSC, csr, csc], check=True)
    model = os.path.join(args.workdir, "pbmc3k.model")
    measure.run_timed([binary, "train", "-r", PBMC3K, "-l", "obs:celltype", "-o", model, "--seed", "0", "-q"], "train pbmc3k")

    commands = {}
    for layout, path in (("CSR", csr), ("CSC", csc)):
        commands[f"inspect {layout}"] = [binary, "inspect", path]
        commands[f"annotate {layout}"] = [binary, "annotate", "-i", path, "-m", model, "--csv",
                                          os.path.join(args.workdir, f"labels_{layout}.csv"), "-q"]
    results = measure.interleaved_medians(commands, args.repeats)
    identical = filecmp.cmp(os.path.join(args.workdir, "labels_CSR.csv"), os.path.join(args.workdir, "labels_CSC.csv"), shallow=False)
    peer_runs = []
    for _ in range(args.repeats):
        out = subprocess.run(["/usr/bin/python3", "-c", ANNDATA_ROWS, csc], capture_output=True, text=True, check=True).stdout
        peer_runs.append(json.loads(out))
    peer_runs.sort(key=lambda run: run["seconds"])
    peer = peer_runs[len(peer_runs) // 2]

    document = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "celltyper_source": measure.git_commit(ROOT),
                "cells": args.cells, "repeats": args.repeats, "labels_identical": identical, "celltyper": results,
                "anndata_read_csc_tocsr": peer}
    with open(args.out + ".json", "w") as handle:
        json.dump(document, handle, indent=1)
    lines = ["# The same cells by row and by column (bench/io/layouts.py)", "",
             f"Command: `/usr/bin/python3 bench/io/layouts.py --cells {args.cells} --repeats {args.repeats}`; celltyper "
             f"{document['celltyper_source']}; {document['machine']}. {args.cells:,} pbmc3k cells resampled (bench/io/resample_h5ad), "
             "stored as CSR and as CSC (anndata); a default `train` on pbmc3k; default `inspect` and `annotate --csv`. "
             f"Medians of {args.repeats} interleaved runs: wall seconds and peak RSS. Labels identical across layouts: "
             f"**{'yes' if identical else 'NO'}**.", "",
             "| command | CSR s | CSC s | CSC / CSR | CSR peak MB | CSC peak MB |", "|---|---:|---:|---:|---:|---:|"]
    for command in ("inspect", "annotate"):
        row, col = results[f"{command} CSR"], results[f"{command} CSC"]
        lines.append(f"| {command} | {row['seconds']:.2f} | {col['seconds']:.2f} | {col['seconds'] / row['seconds']:.1f} | "
                     f"{row['peak_rss_mb']:.0f} | {col['peak_rss_mb']:.0f} |")
    lines += ["", f"Reference: anndata `read_h5ad` of the CSC file, then `X.tocsr()` (what a Python user does to read its cells): "
                  f"{peer['seconds']:.2f} s, peak {peer['peak_rss_mb']:.0f} MB (median of {args.repeats}); celltyper's CSC "
                  f"annotate / that: {results['annotate CSC']['seconds'] / peer['seconds']:.2f}.", ""]
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    if not identical:
        sys.exit("labels differ between the layouts")


if __name__ == "__main__":
    main()
