#!/usr/bin/python3
"""Cell-embedding benchmark (issue: cell embedding engine).

Synthetic files resampled from real pbmc3k cells (bench/io/resample_h5ad): 100k and 1M cells.
For d = 256, 1024, 3072:
  * celltyper `kernel`: matrix in memory; normalise (log1p CP10k) + weighted sum + L2 per cell;
  * celltyper `stream`: end to end from disk with the default memory cap (read + embed);
  * SciPy: X @ E with X a float32 CSR (already normalised, product only: favours SciPy);
  * PyTorch: torch.sparse.mm on the same CSR (as COO), 2 intra-op threads, product only.
Reported: cells/s, effective GFLOP/s (2 * nnz * d / s, nnz = values on genes with a vector),
peak RSS, ratios celltyper-kernel / reference, and the kernel's fraction of the machine's FP32 FMA
peak, measured in the same run (`embed_bench peak`: register-resident FMA chains on every core). The references are timed on the first
`--ref-cells` cells when that is smaller than the file (rates are per cell, so comparable).

    /usr/bin/python3 bench/embed/run.py [--sizes 100000,1000000] [--dims 256,1024,3072]

Writes bench/results/embed.json and bench/results/embed.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
GENES = os.path.join(SHARED, "gene-annotations", "human_genes.tsv")

REFERENCE = r"""
import json, resource, sys, time
import h5py, numpy as np, scipy.sparse as sp
path, dims, cells, tool, threads, gene_table = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
with h5py.File(path, "r") as f:
    g = f["X"]
    indptr = g["indptr"][: cells + 1]
    nnz = int(indptr[-1])
    X = sp.csr_matrix((g["data"][:nnz], g["indices"][:nnz], indptr), shape=(cells, int(g.attrs["shape"][1])))
    var = [v.decode() if isinstance(v, bytes) else v for v in f["var"][f["var"].attrs["_index"]][:]]
# the same genes celltyper matches (symbols known to the gene table), same normalisation
import csv
known = set()
with open(gene_table) as t:
    r = csv.reader(t, delimiter="\t"); header = next(r); si = header.index("symbol")
    for row in r: known.add(row[si])
keep = np.array([v in known for v in var])
totals = np.asarray(X.sum(axis=1)).ravel()
X = (sp.diags((1e4 / totals).astype(np.float32)) @ X).tocsr()
X.data = np.log1p(X.data).astype(np.float32)
X = X[:, np.flatnonzero(keep)].tocsr().astype(np.float32)
E = np.random.default_rng(7).standard_normal((X.shape[1], dims), dtype=np.float32)
times = []
if tool == "scipy":
    for _ in range(3):
        t = time.perf_counter(); Y = X @ E; times.append(time.perf_counter() - t)
else:
    import torch
    torch.set_num_threads(threads)
    coo = X.tocoo()
    Xt = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, size=X.shape).coalesce()
    Et = torch.from_numpy(E)
    torch.sparse.mm(Xt, Et)
    for _ in range(3):
        t = time.perf_counter(); Y = torch.sparse.mm(Xt, Et); times.append(time.perf_counter() - t)
s = sorted(times)[1]
print(json.dumps({"tool": tool, "cells": cells, "dims": dims, "seconds": s, "cells_per_s": cells / s, "gflops": 2 * X.nnz * dims / s / 1e9,
                  "nnz": int(X.nnz), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ratio(row, key):
    return f"{row[key]:.1f}x" if key in row else "-"


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--big-dims", default="256", help="dims run on files over 200k cells (1M cells at d = 3072 takes ~10 min)")
    parser.add_argument("--dims", default="256,1024,3072")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--ref-cells", type=int, default=20000, help="cells the references are timed on at d > 256")
    parser.add_argument("--workdir", default="/tmp/celltyper-bench")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    for needed in (PBMC3K, GENES):
        if not os.path.exists(needed):
            sys.exit(f"bench/embed: {needed} is missing: the benchmark needs ../shared/data")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    embed_bench = os.path.join(args.build, "bench", "embed_bench")
    os.makedirs(args.workdir, exist_ok=True)
    peak = run_json([embed_bench, "peak", str(args.threads)])
    print(json.dumps(peak), flush=True)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        path = os.path.join(args.workdir, f"pbmc{size // 1000}k_uncompressed.h5ad")
        if not os.path.exists(path):
            subprocess.run([resample, PBMC3K, path, str(size)], check=True)
        all_dims = [int(d) for d in (args.dims if size <= 200000 else args.big_dims).split(",")]
        for dims in all_dims:
            row = {"cells": size, "dims": dims}
            if size <= 200000:
                row["celltyper_kernel"] = run_json([embed_bench, "kernel", path, str(dims), str(args.threads), GENES, "3"])
            row["celltyper_stream"] = run_json([embed_bench, "stream", path, str(dims), str(args.threads), GENES, "1"])
            ref_cells = size if (dims == 256 and size <= 200000) else min(size, args.ref_cells)
            if size <= 200000:
                for tool in ("scipy", "torch"):
                    row[tool] = run_json(["/usr/bin/python3", "-c", REFERENCE, path, str(dims), str(ref_cells), tool, str(args.threads), GENES])
                ours = row["celltyper_kernel"]["cells_per_s"]
                row["speedup_vs_scipy"] = ours / row["scipy"]["cells_per_s"]
                row["speedup_vs_torch"] = ours / row["torch"]["cells_per_s"]
                row["fraction_of_fma_peak"] = row["celltyper_kernel"]["gflops"] / peak["gflops"]
            results.append(row)
            print(json.dumps(row), flush=True)
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "embed.json"), "w") as f:
        json.dump({"threads": args.threads, "fma_peak": peak, "load": os.getloadavg(), "results": results}, f, indent=1)
    lines = [f"Machine FP32 FMA peak, measured ({args.threads} threads, {peak['vector_bits']}-bit FMA chains): {peak['gflops']:.0f} GFLOP/s.", "",
             "| cells | d | celltyper kernel cells/s (GFLOP/s, % of FMA peak) | celltyper from disk cells/s (peak RSS MB) | SciPy cells/s (GFLOP/s) | torch cells/s (GFLOP/s) | vs SciPy | vs torch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        k = r.get("celltyper_kernel")
        s = r["celltyper_stream"]
        kernel = f"{k['cells_per_s']:.0f} ({k['gflops']:.1f}, {100 * k['gflops'] / peak['gflops']:.1f}%)" if k else "-"
        sc = f"{r['scipy']['cells_per_s']:.0f} ({r['scipy']['gflops']:.1f})" if "scipy" in r else "-"
        to = f"{r['torch']['cells_per_s']:.0f} ({r['torch']['gflops']:.1f})" if "torch" in r else "-"
        lines.append(f"| {r['cells']} | {r['dims']} | {kernel} | {s['cells_per_s']:.0f} ({s['peak_rss_mb']:.0f}) | {sc} | {to} | "
                     f"{ratio(r, 'speedup_vs_scipy')} | {ratio(r, 'speedup_vs_torch')} |")
    with open(os.path.join(out_dir, "embed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
