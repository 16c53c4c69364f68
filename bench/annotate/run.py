#!/usr/bin/python3
"""Annotation benchmark (issue: train, predict, annotate).

A synthetic 100k-cell h5ad resampled from real pbmc3k cells (bench/io/resample_h5ad) is annotated
end to end, read to write, by:
  * `celltyper annotate` with a model trained on pbmc3k (`celltyper train`, default gene store,
    d = 256; one logreg model, and each other classifier the binary knows);
  * the same pipeline in Python, in this script: anndata read, SciPy embedding (log1p-CP10k, CSR
    @ gene matrix, L2 normalisation), a PyTorch MLP predict (python3-torch, same input dims and
    classes, 2 intra-op threads), anndata write of the copy with the label and score columns.
Reported: wall seconds (median of --repeats runs) and peak RSS of each, and the ratio. The floor
of the default model (logistic regression on the expression panel) is measured in the same run:
bench/io read_bench (every block of X read and touched) and bench/annotate annotate_floor (every
block read and every cell's probabilities computed with annotate's own kernel, nothing written).

    /usr/bin/python3 bench/annotate/run.py [--cells 100000] [--repeats 3]

Writes bench/results/annotate.json and bench/results/annotate.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from measure import resampled_pbmc3k, run_measured  # noqa: E402
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

PYTHON_PIPELINE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import anndata, numpy as np, scipy.sparse as sp, torch, h5py
query, out, store, dims, n_classes, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
a = anndata.read_h5ad(query)
# gene vectors of the query's genes from the celltyper store (symbols), first `dims` columns
with h5py.File(store, "r") as f:
    symbols = [s.decode() for s in f["genes/symbol"][:]]
    E_all = f["embeddings"][:, :dims] if "embeddings" in f else f["matrix"][:, :dims]
row = {s: i for i, s in enumerate(symbols)}
keep = np.array([v in row for v in a.var_names])
E = np.zeros((a.n_vars, dims), dtype=np.float32)
E[keep] = E_all[[row[v] for v in a.var_names[keep]]]
E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
X = sp.csr_matrix(a.X, dtype=np.float32)
totals = np.asarray(X.sum(axis=1)).ravel()
X = sp.diags((1e4 / np.maximum(totals, 1)).astype(np.float32)) @ X
X = sp.csr_matrix(X); X.data = np.log1p(X.data)
Y = X @ E
Y /= np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)
mlp = torch.nn.Sequential(torch.nn.Linear(dims, 256), torch.nn.ReLU(), torch.nn.Linear(256, n_classes)).eval()
with torch.no_grad():
    p = torch.softmax(mlp(torch.from_numpy(Y)), dim=1).numpy()
a.obs["celltyper_label"] = np.array([f"class{i}" for i in range(n_classes)])[p.argmax(1)]
a.obs["celltyper_label"] = a.obs["celltyper_label"].astype("category")
a.obs["celltyper_score"] = p.max(1).astype(np.float32)
a.write_h5ad(out)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def durable_copy_seconds(source, target):
    """Seconds to copy `source` into a new file with copy_file_range (as annotate copies its input
    into its output) and fsync it: what any durable output of that size costs on this disk. The
    copy is removed afterwards, untimed."""
    import time
    if os.path.exists(target):
        os.remove(target)
    started = time.perf_counter()
    with open(source, "rb") as f, open(target, "wb") as g:
        remaining = os.fstat(f.fileno()).st_size
        while remaining > 0:
            moved = os.copy_file_range(f.fileno(), g.fileno(), min(remaining, 64 << 20))
            if moved <= 0:
                raise RuntimeError(f"copy_file_range stopped with {remaining} bytes left")
            remaining -= moved
        g.flush()
        os.fsync(g.fileno())
    seconds = time.perf_counter() - started
    os.remove(target)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--classifiers", default=None)
    parser.add_argument("--workdir", default="/tmp/celltyper-bench-annotate")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--tag", default=None, help="write bench/results/annotate_TAG.{json,md} (default: annotate.{json,md})")
    args = parser.parse_args()
    if not os.path.exists(PBMC3K):
        sys.exit(f"bench/annotate: {PBMC3K} is missing: the benchmark needs ../shared/data")
    celltyper = os.path.join(args.build, "celltyper")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    store = os.environ.get("CELLTYPER_GENE_STORE", os.path.join(args.build, "share", "celltyper", "gene_embeddings.h5"))
    for needed in (celltyper, resample, store):
        if not os.path.exists(needed):
            sys.exit(f"bench/annotate: {needed} is missing (scripts/setup.sh builds it)")
    os.makedirs(args.workdir, exist_ok=True)
    query = resampled_pbmc3k(args.build, args.workdir, args.cells, PBMC3K)
    if args.classifiers is None:
        helptext = subprocess.run([celltyper, "train", "--help"], capture_output=True, text=True).stdout
        args.classifiers = ",".join(c for c in ("logreg", "mlp", "xgboost", "knn") if c in helptext)
    results = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), load_before=os.getloadavg()),
                   cells=args.cells, dims=args.dims, threads=args.threads, runs=[])
    out = os.path.join(args.workdir, "annotated.h5ad")
    # Python pipeline.
    python = [run_measured(["/usr/bin/python3", "-c", PYTHON_PIPELINE, query, out, store, str(args.dims), "9", str(args.threads)],
                           "bench/annotate")[:2]
              for _ in range(args.repeats)]
    py_wall = statistics.median(w for w, _ in python)
    py_rss = max(r for _, r in python)
    results["python"] = dict(wall_seconds=py_wall, peak_rss_mb=py_rss, runs=[w for w, _ in python])
    print(f"python pipeline: {py_wall:.2f} s, {py_rss:.0f} MB", flush=True)
    for classifier in args.classifiers.split(","):
        for features in ("genept", "expression"):
            model = os.path.join(args.workdir, f"model_{classifier}_{features}.h5")
            train = [celltyper, "--quiet", "train", "--reference", PBMC3K, "--label", "obs:celltype", "--classifier", classifier,
                     "--features", features, "--out", model, "--validation-fraction", "0", "--threads", str(args.threads)]
            if features == "genept":
                train += ["--dims", str(args.dims)]
            train_wall, _ = run_measured(train, "bench/annotate")[:2]
            command = [celltyper, "--quiet", "annotate", "--model", model, "--input", query, "--out", out, "--threads", str(args.threads)]
            # Into a new path (the output removed before each run, untimed: a first run), and over
            # the previous run's output (the file system then also frees the replaced 688 MB file).
            runs, replacing = [], []
            for _ in range(args.repeats):
                if os.path.exists(out):
                    os.remove(out)
                runs.append(run_measured(command, "bench/annotate")[:2])
                replacing.append(run_measured(command, "bench/annotate")[:2])
            wall = statistics.median(w for w, _ in runs)
            rss = max(r for _, r in runs + replacing)
            row = dict(classifier=classifier, features=features, train_seconds=train_wall, wall_seconds=wall, peak_rss_mb=rss,
                       runs=[w for w, _ in runs], speedup_vs_python=py_wall / wall,
                       wall_seconds_replacing=statistics.median(w for w, _ in replacing), runs_replacing=[w for w, _ in replacing])
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    # The floor of the default model: read alone, read + kernel alone.
    floor_model = os.path.join(args.workdir, "model_logreg_expression.h5")
    if os.path.exists(floor_model):
        def timed(command):
            return [json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["seconds"]
                    for _ in range(args.repeats)]
        read = statistics.median(timed([os.path.join(args.build, "bench", "read_bench"), query, "x"]))
        kernel = statistics.median(timed([os.path.join(args.build, "bench", "annotate_floor"), floor_model, query,
                                          "--threads", str(args.threads)]))
        copy = statistics.median(durable_copy_seconds(query, os.path.join(args.workdir, "copy_floor.h5ad")) for _ in range(args.repeats))
        default = next(r for r in results["runs"] if r["classifier"] == "logreg" and r["features"] == "expression")
        results["floor"] = dict(read_seconds=read, read_and_kernel_seconds=kernel, durable_copy_seconds=copy,
                                default_over_floor=default["wall_seconds"] / kernel,
                                default_replacing_over_floor=default["wall_seconds_replacing"] / kernel,
                                default_over_output_floor=default["wall_seconds"] / max(kernel, copy),
                                default_replacing_over_output_floor=default["wall_seconds_replacing"] / max(kernel, copy))
        print(json.dumps(results["floor"]), flush=True)
    results["machine"]["load_after"] = os.getloadavg()
    out_dir = os.path.join(ROOT, "bench", "results")
    name = "annotate" if args.tag is None else f"annotate_{args.tag}"
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = [f"# annotate: {args.cells} cells resampled from pbmc3k, read to write", "",
             f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} cores, load average before "
             f"{results['machine']['load_before'][0]:.1f}, after {results['machine']['load_after'][0]:.1f}. Medians of {args.repeats} runs. "
             f"Reproduce: `/usr/bin/python3 bench/annotate/run.py{' --classifiers ' + args.classifiers if args.tag else ''}{' --tag ' + args.tag if args.tag else ''}`.", "",
             "Annotate wall: into a new output path (each run's output removed first, untimed); replacing: over the previous "
             "run's output, when the file system also frees the replaced file.", "",
             "| pipeline | features | train s (pbmc3k) | annotate wall s | replacing s | peak RSS MB | speed-up vs Python |",
             "|---|---|---:|---:|---:|---:|---:|",
             f"| Python: anndata + SciPy embedding (d={args.dims}) + PyTorch MLP + anndata write | genept | | {py_wall:.2f} | | {py_rss:.0f} | 1.0x |"]
    for r in results["runs"]:
        default = " (default model)" if r["classifier"] == "logreg" and r["features"] == "expression" else ""
        lines.append(f"| celltyper annotate, {r['classifier']}{default} | {r['features']} | {r['train_seconds']:.1f} | {r['wall_seconds']:.2f} | "
                     f"{r['wall_seconds_replacing']:.2f} | {r['peak_rss_mb']:.0f} | {r['speedup_vs_python']:.1f}x |")
    if "floor" in results:
        f = results["floor"]
        lines += ["", "Floor of the default model in the same run (medians): reading X alone "
                  f"{f['read_seconds']:.2f} s (`bench/read_bench`); reading X and computing every cell's probabilities with annotate's "
                  f"kernel, nothing written {f['read_and_kernel_seconds']:.2f} s (`bench/annotate_floor`); `celltyper annotate` read to "
                  f"write = {f['default_over_floor']:.2f}x that floor ({f['default_replacing_over_floor']:.2f}x replacing; it also loads "
                  "the model and gene table, reads obs, copies the input to the output, writes the labels and syncs the file). "
                  f"Copying the input into a new file and syncing it to disk, nothing else (what any durable output of this size "
                  f"costs here): {f['durable_copy_seconds']:.2f} s; against the larger of the two floors (they can overlap, not "
                  f"shrink), annotate = {f['default_over_output_floor']:.2f}x ({f['default_replacing_over_output_floor']:.2f}x replacing)."]
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
