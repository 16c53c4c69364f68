#!/usr/bin/python3
"""Start-up benchmark (issue #18, "no fixed costs"): what a user waits for on a small file.

Wall seconds, median of --repeats runs, of:
  * `celltyper --version`: process start alone (dynamic loading, static initialisation);
  * `celltyper genes info`: the default gene store's description;
  * `celltyper inspect pbmc3k` and `inspect --no-genes` (the gene-id overlap needs the gene table
    of org.Hs.eg.db, read from celltyper's binary cache);
  * the reference in the same run: Python + anndata describing the same file
    (`anndata.read_h5ad(path, backed="r")`, print the object and its obs columns), i.e. what a
    scanpy user types for the same question.
The gene-table cache is warmed first (one untimed `inspect`). The goal of the issue is < 0.15 s
for `genes info` and `inspect`.

    /usr/bin/python3 bench/startup/run.py [--repeats 5]

Writes bench/results/startup.json and bench/results/startup.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
CLI = os.path.join(ROOT, "build", "celltyper")

ANNDATA_DESCRIBE = r"""
import sys, anndata
a = anndata.read_h5ad(sys.argv[1], backed="r")
print(a)
for column in a.obs.columns:
    print(column, a.obs[column].dtype, a.obs[column].nunique())
"""


def wall(command, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([CLI, "inspect", PBMC3K], check=True, stdout=subprocess.DEVNULL)  # warm the gene-table cache
    rows = [
        ("celltyper --version", [CLI, "--version"]),
        ("celltyper genes info", [CLI, "genes", "info"]),
        ("celltyper inspect pbmc3k", [CLI, "inspect", PBMC3K]),
        ("celltyper inspect --no-genes pbmc3k", [CLI, "inspect", "--no-genes", PBMC3K]),
        ("python3 + anndata: read_h5ad(backed) + describe obs", ["/usr/bin/python3", "-c", ANNDATA_DESCRIBE, PBMC3K]),
    ]
    results = []
    for name, command in rows:
        median, times = wall(command, args.repeats)
        results.append({"command": name, "median_s": median, "runs_s": times})
        print(f"{name}: {median:.3f} s (median of {args.repeats})", flush=True)
    reference = results[-1]["median_s"]
    with open(os.path.join(ROOT, "bench", "results", "startup.json"), "w") as out:
        json.dump({"machine": platform.platform(), "cpus": os.cpu_count(), "repeats": args.repeats, "results": results}, out, indent=2)
    lines = ["# Start-up (bench/startup/run.py)", "",
             f"{os.cpu_count()} CPUs, median of {args.repeats} runs, gene-table cache warm.", "",
             "| command | wall s (median) | vs anndata describe |", "|---|---|---|"]
    for row in results:
        lines.append(f"| {row['command']} | {row['median_s']:.3f} | {row['median_s'] / reference:.2f}x |")
    with open(os.path.join(ROOT, "bench", "results", "startup.md"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
