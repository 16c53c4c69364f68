#!/usr/bin/python3
"""Corpus-scale benchmark (issue #7, items 3 and 4): selection, extract, MPI scaling.

1. ILP vs greedy on a synthetic 1,000-file catalogue (bench/corpus/select_bench): objective, bound,
   gap and time at several CBC time limits; greedy median of 5.
2. Extract throughput: `--files` local h5ad files of mixed sizes resampled from real pbmc3k cells
   (bench/io/resample_h5ad, labels kept). `celltyper select` picks ~10% of the cells (fragments of
   `--fragment-rows`), then `celltyper extract` embeds only those rows; the reference is
   `celltyper embed` of every whole file (what a tool without row-range reads must do before
   subsetting). Reported: cells/s of each and the time to obtain the training matrix.
3. MPI scaling on this machine: `mpirun -n N celltyper extract` with one thread per process, N = 1, 2;
   efficiency = T1 / (N * TN). Outputs are checked identical.
4. Modelled cost for 100M cells from the measured per-process rate and efficiency.

Median of `--repeats` runs after a warm-up run. Needs build/ (celltyper, resample_h5ad,
select_bench), mpirun (openmpi-bin) and ../shared/data.

    /usr/bin/python3 bench/corpus/run.py [--files 12] [--repeats 3]

Writes bench/results/corpus.json and bench/results/corpus.md.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
GENES = os.path.join(SHARED, "gene-annotations", "human_genes.tsv")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def timed(command, **kwargs):
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - start, done.stdout


def median_time(command, repeats):
    timed(command)  # warm-up (page cache, plugin load)
    return statistics.median(timed(command)[0] for _ in range(repeats))


def make_store(cli, path, dims):
    """A random gene store: seeded Gaussian vectors for every gene of the table, imported."""
    import h5py
    import numpy as np
    ids = []
    with open(GENES) as table:
        header = table.readline().rstrip("\n").split("\t")
        column = header.index("entrez_id")
        for line in table:
            ids.append(int(line.split("\t")[column]))
    raw = path + ".raw.h5"
    with h5py.File(raw, "w") as f:
        f["embeddings"] = np.random.default_rng(7).standard_normal((len(ids), dims), dtype=np.float32)
        f["gene_ids"] = np.array(ids, dtype=np.int64)
    subprocess.run([cli, "genes", "embed", "--backend", "import", "--input", raw, "--gene-table", GENES, "-o", path, "-q"], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--files", type=int, default=12, help="synthetic local files (mixed sizes)")
    parser.add_argument("--fragment-rows", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--select-limits", default="2,10,30")
    parser.add_argument("--work", default=None, help="folder for the synthetic files (default: a temporary one)")
    args = parser.parse_args()
    for path in (PBMC3K, GENES):
        if not os.path.exists(path):
            sys.exit(f"bench/corpus: {path} is absent: ../shared/data is needed")
    cli = os.path.join(args.build, "celltyper")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    select_bench = os.path.join(args.build, "bench", "select_bench")
    for tool in (cli, resample, select_bench):
        if not os.path.exists(tool):
            sys.exit(f"bench/corpus: {tool} is missing: build first (cmake --build build)")
    if shutil.which("mpirun") is None:
        sys.exit("bench/corpus: mpirun is missing (apt-get install openmpi-bin)")
    result = {"benchmark": "corpus", "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                 "load_average_at_start": os.getloadavg()}}

    # 1. Selection.
    out = subprocess.run([select_bench, "--time-limits", args.select_limits], check=True, capture_output=True, text=True).stdout
    result["select"] = json.loads(out)

    work = args.work or tempfile.mkdtemp(prefix="celltyper-corpus-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        # 2. Synthetic corpus: mixed sizes, 5k..60k cells.
        sizes = [5000 + (i * 7919) % 55000 for i in range(args.files)]
        files = []
        for i, cells in enumerate(sizes):
            path = os.path.join(work, f"corpus_{i:03d}.h5ad")
            if not os.path.exists(path):
                subprocess.run([resample, PBMC3K, path, str(cells), "--seed", str(100 + i), "--label", "celltype"], check=True,
                               capture_output=True)
            files.append(path)
        total_cells = sum(sizes)
        total_bytes = sum(os.path.getsize(f) for f in files)
        store = os.path.join(work, f"store{args.dims}.h5")
        if not os.path.exists(store):
            make_store(cli, store, args.dims)
        listing = os.path.join(work, "files.txt")
        with open(listing, "w") as f:
            f.write("\n".join(files) + "\n")
        selection = os.path.join(work, "selection.json")
        budget = total_cells // 10
        seconds, out = timed([cli, "select", "--files-from", listing, "--label", "celltype", "--fragment-rows", str(args.fragment_rows),
                              "--budget-cells", str(budget), "--min-per-class", "200", "--time-limit", "10", "-o", selection, "--json", "-q"])
        chosen = json.loads(out)
        result["corpus"] = {"files": len(files), "cells": total_cells, "bytes": total_bytes, "sizes": sizes, "dims": args.dims,
                            "fragment_rows": args.fragment_rows, "budget_cells": budget}
        result["corpus_select"] = {"seconds": seconds, "n_cells": chosen["n_cells"], "n_fragments": chosen["n_fragments"],
                                   "status": chosen["solver"]["status"], "gap": chosen["solver"]["gap"],
                                   "ilp_objective": chosen["ilp"]["objective"], "greedy_objective": chosen["greedy"]["objective"]}
        selected = chosen["n_cells"]

        common = ["-g", store, "--gene-table", GENES, "-q"]
        extract_out = os.path.join(work, "train.h5ad")
        t_extract = median_time([cli, "extract", "-s", selection, "-o", extract_out] + common, args.repeats)
        def embed_all():
            for f in files:
                subprocess.run([cli, "embed", "-i", f, "-o", f + ".npy"] + common, check=True, capture_output=True)
        embed_all()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            embed_all()
            times.append(time.perf_counter() - start)
        t_whole = statistics.median(times)
        result["extract"] = {"selected_cells": selected, "selected_fraction": selected / total_cells,
                             "extract_seconds": t_extract, "extract_cells_per_s": selected / t_extract,
                             "whole_files_seconds": t_whole, "whole_files_cells_per_s": total_cells / t_whole,
                             "speedup_to_training_matrix": t_whole / t_extract, "threads": os.cpu_count()}

        # 3. MPI scaling, one thread per process.
        scaling = []
        outputs = []
        for n in (1, 2):
            output = os.path.join(work, f"train_n{n}.h5ad")
            command = MPIRUN + ["-n", str(n), cli, "extract", "-s", selection, "-o", output, "--threads", "1"] + common
            scaling.append({"processes": n, "seconds": median_time(command, args.repeats)})
            outputs.append(output)
        t1 = scaling[0]["seconds"]
        for entry in scaling:
            entry["speedup"] = t1 / entry["seconds"]
            entry["efficiency"] = t1 / (entry["processes"] * entry["seconds"])
            entry["cells_per_s"] = selected / entry["seconds"]
        same = subprocess.run([sys.executable, "-c", SAME, outputs[0], outputs[1]], capture_output=True, text=True)
        result["mpi"] = {"extract": scaling, "outputs_identical": same.returncode == 0}

        # 4. Modelled cost for 100M cells on a cluster (compute + local reads measured here; object
        # storage bandwidth is a stated assumption, not a measurement).
        per_process = selected / t1
        efficiency = scaling[1]["efficiency"]
        bytes_per_cell = total_bytes / total_cells
        model = {"per_process_cells_per_s": per_process, "parallel_efficiency": efficiency, "bytes_per_cell": bytes_per_cell,
                 "assumed_bandwidth_per_node_gb_s": 1.0, "cases": []}
        for label, cells in (("10% selection of 100M", 10_000_000), ("all 100M cells", 100_000_000)):
            for processes in (32, 128, 512):
                compute = cells / (per_process * processes * efficiency)
                io = cells * bytes_per_cell / (processes / 16 * 1e9)  # 16 processes per node
                model["cases"].append({"work": label, "processes": processes, "compute_hours": compute / 3600,
                                       "io_hours_at_assumed_bandwidth": io / 3600,
                                       "hours": max(compute, io) / 3600, "core_hours": cells / per_process / 3600})
        result["model_100m"] = model
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "corpus.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(ROOT, "bench", "results", "corpus.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))


SAME = r"""
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
def walk(x, y):
    assert sorted(x.keys()) == sorted(y.keys())
    for k in x.keys():
        if isinstance(x[k], h5py.Group): walk(x[k], y[k])
        else: assert np.array_equal(x[k][()], y[k][()]), k
walk(a, b)
"""


def markdown(r):
    s = r["select"]
    lines = ["# Corpus benchmark", "", f"Machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}, load average at start "
             f"{', '.join(f'{x:.1f}' for x in r['machine']['load_average_at_start'])} (shared machine).", "",
             f"## Selection: {s['catalogue']['files']} files, {s['catalogue']['fragments']} fragments, {s['catalogue']['classes']} classes, "
             f"{s['catalogue']['cells']:,} cells; budget {s['options']['budget_cells']:,}, min {s['options']['min_per_class']}, "
             f"max {s['options']['max_per_class']} per class", "",
             "| method | time limit (s) | status | objective | best bound | gap | shortfall | wall (s) |", "|---|---|---|---|---|---|---|---|",
             f"| greedy | - | - | {s['greedy']['objective']:.4f} | - | - | {s['greedy']['shortfall']} | {s['greedy']['median_seconds']:.3f} |"]
    for e in s["ilp"]:
        lines.append(f"| CBC | {e['time_limit']:g} | {e['status']} | {e['objective']:.4f} | {e['best_bound']:.4f} | {100 * e['gap']:.3f}% | "
                     f"{e['shortfall']} | {e['wall_seconds']:.2f} |")
    if "extract" in r:
        c, x, m = r["corpus"], r["extract"], r["mpi"]
        lines += ["", f"## Extract: {c['files']} local files, {c['cells']:,} cells ({c['bytes'] / 1e6:.0f} MB) resampled from pbmc3k, "
                  f"{c['dims']} dims", "",
                  f"`select` (fragments of {c['fragment_rows']}, budget {c['budget_cells']:,}): {r['corpus_select']['n_cells']:,} cells in "
                  f"{r['corpus_select']['n_fragments']} fragments, CBC {r['corpus_select']['status']}, {r['corpus_select']['seconds']:.2f} s "
                  f"including the label pass.", "",
                  "| route | cells embedded | seconds | cells/s |", "|---|---|---|---|",
                  f"| extract (selected rows only) | {x['selected_cells']:,} | {x['extract_seconds']:.2f} | {x['extract_cells_per_s']:,.0f} |",
                  f"| embed whole files | {c['cells']:,} | {x['whole_files_seconds']:.2f} | {x['whole_files_cells_per_s']:,.0f} |", "",
                  f"Training matrix {x['speedup_to_training_matrix']:.1f}x sooner with extract.", "",
                  "## MPI scaling (extract, 1 thread per process)", "", "| processes | seconds | speedup | efficiency |", "|---|---|---|---|"]
        for e in m["extract"]:
            lines.append(f"| {e['processes']} | {e['seconds']:.2f} | {e['speedup']:.2f} | {e['efficiency']:.2f} |")
        lines += ["", f"Outputs of 1 and 2 processes identical: {m['outputs_identical']}.", "",
                  "## Modelled cost, 100M cells", "",
                  f"Per process {r['model_100m']['per_process_cells_per_s']:,.0f} cells/s (measured, 1 thread, local files), efficiency "
                  f"{r['model_100m']['parallel_efficiency']:.2f} (measured N=2), {r['model_100m']['bytes_per_cell']:.0f} bytes/cell; "
                  "object storage at an assumed 1 GB/s per 16-process node.", "",
                  "| work | processes | compute h | I/O h (assumed) | wall h | core-hours |", "|---|---|---|---|---|---|"]
        for e in r["model_100m"]["cases"]:
            lines.append(f"| {e['work']} | {e['processes']} | {e['compute_hours']:.2f} | {e['io_hours_at_assumed_bandwidth']:.2f} | "
                         f"{e['hours']:.2f} | {e['core_hours']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
