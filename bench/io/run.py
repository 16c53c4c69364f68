#!/usr/bin/python3
"""I/O benchmark (issue: foundation): full streaming read of X, and obs only, of a 200k-cell
h5ad resampled from real pbmc3k cells (uncompressed and gzip), celltyper vs anndata
(read_h5ad, then touching X), same machine, same script. Reports medians of repeated runs:
wall seconds (in-process, imports excluded), decoded MB/s, peak RSS, and the speed ratio.

    /usr/bin/python3 bench/io/run.py [--cells 200000] [--repeats 3] [--workdir /tmp/celltyper-bench]

Writes bench/results/io.json and bench/results/io.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

ANNDATA_READ = r"""
import sys, time, resource, json
import anndata, h5py
path, what = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if what == "x":
    a = anndata.read_h5ad(path)
    checksum = float(a.X.data.sum(dtype="float64"))
    decoded = a.X.nnz * 8
else:
    from anndata._io.specs import read_elem
    with h5py.File(path, "r") as f:
        obs = read_elem(f["obs"])
    checksum, decoded = float(len(obs)), 0
dt = time.perf_counter() - t
print(json.dumps({"tool": "anndata", "what": what, "seconds": dt, "decoded_mb_per_s": decoded / 1e6 / dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "checksum": checksum}))
"""


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_of(runs):
    best = dict(runs[0])
    for key in ("seconds", "decoded_mb_per_s", "peak_rss_mb"):
        best[key] = statistics.median(r[key] for r in runs)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=200000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/celltyper-bench")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    if not os.path.exists(PBMC3K):
        sys.exit(f"bench/io: {PBMC3K} is missing: the benchmark needs ../shared/data")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    read_bench = os.path.join(args.build, "bench", "read_bench")
    for tool in (resample, read_bench):
        if not os.path.exists(tool):
            sys.exit(f"bench/io: {tool} is missing: build first (scripts/setup.sh)")
    os.makedirs(args.workdir, exist_ok=True)
    files = {}
    for label, gzip in (("uncompressed", 0), ("gzip", 4)):
        path = os.path.join(args.workdir, f"pbmc{args.cells // 1000}k_{label}.h5ad")
        if not os.path.exists(path):
            subprocess.run([resample, PBMC3K, path, str(args.cells), "--gzip", str(gzip)], check=True)
        files[label] = path

    results = []
    for label, path in files.items():
        size_mb = os.path.getsize(path) / 1e6
        for what in ("x", "obs"):
            # warm-up (page cache) then repeats
            run_json([read_bench, path, what])
            ours = median_of([run_json([read_bench, path, what]) for _ in range(args.repeats)])
            run_json(["/usr/bin/python3", "-c", ANNDATA_READ, path, what])
            theirs = median_of([run_json(["/usr/bin/python3", "-c", ANNDATA_READ, path, what]) for _ in range(args.repeats)])
            if what == "x" and abs(ours["checksum"] - theirs["checksum"]) > 1e-6 * abs(theirs["checksum"]):
                sys.exit(f"checksums differ: {ours['checksum']} vs {theirs['checksum']}")
            results.append({"file": label, "file_mb": size_mb, "what": what, "celltyper": ours, "anndata": theirs,
                            "speedup": theirs["seconds"] / ours["seconds"]})
            print(f"{label:12s} {what:3s} celltyper {ours['seconds']:.3f}s ({ours['peak_rss_mb']:.0f} MB RSS)  "
                  f"anndata {theirs['seconds']:.3f}s ({theirs['peak_rss_mb']:.0f} MB RSS)  speedup {results[-1]['speedup']:.1f}x",
                  flush=True)

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "anndata": subprocess.run(["/usr/bin/python3", "-c", "import anndata; print(anndata.__version__)"],
                                         capture_output=True, text=True).stdout.strip()}
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "io.json"), "w") as f:
        json.dump({"cells": args.cells, "repeats": args.repeats, "machine": machine, "results": results}, f, indent=1)
    lines = [f"| X file ({args.cells} cells) | read | celltyper s | anndata s | speedup | celltyper MB/s | celltyper peak RSS MB | anndata peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['file']} ({r['file_mb']:.0f} MB) | {r['what']} | {r['celltyper']['seconds']:.3f} | {r['anndata']['seconds']:.3f} | "
                     f"{r['speedup']:.1f}x | {r['celltyper']['decoded_mb_per_s']:.0f} | {r['celltyper']['peak_rss_mb']:.0f} | {r['anndata']['peak_rss_mb']:.0f} |")
    with open(os.path.join(out_dir, "io.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
