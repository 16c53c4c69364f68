"""Shared by the bench scripts: run one command and measure it; the resampled pbmc3k file; the
Cell Ontology the tool uses by default; counts thinned to a depth.

    sys.path.insert(0, BENCH_DIR); from measure import run_measured, resampled_pbmc3k
"""
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time


def default_ontology(shared):
    """The Cell Ontology scripts/setup.sh installs from SHARED/cell-ontology, which every command
    uses by default: the newest CELLxGENE export CL-ontology-<version>.json, else cl-basic.obo."""
    exports = sorted(glob.glob(os.path.join(shared, "cell-ontology", "CL-ontology-*.json")))
    return exports[-1] if exports else os.path.join(shared, "cell-ontology", "cl-basic.obo")


def git_commit(root):
    """The short commit of the checkout at `root` (what a results file names)."""
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def run_timed(command, what):
    """Run `command` with its output captured; exit with `what`, the command and its stderr when
    it fails. Returns (the CompletedProcess, wall seconds)."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{what}: {' '.join(command)} failed:\n{result.stderr}")
    return result, time.perf_counter() - start


def run_measured(command, what, capture=False):
    """Run `command` (stdout discarded unless `capture`); exit with `what` and the end of its
    stderr when it fails. Returns (wall seconds, peak RSS in MB of that process, stdout text)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err)
        out = process.stdout.read().decode() if capture else ""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            sys.exit(f"{what}: {' '.join(command[:4])} ... failed (exit {process.returncode}): "
                     f"{err.read().decode(errors='replace').strip()[-400:]}")
    return wall, usage.ru_maxrss / 1024, out


def interleaved_medians(commands, repeats):
    """Run every command of `commands` (label -> argv) `repeats` times, interleaved so that load
    drifts hit every command alike. Returns label -> {"seconds": median wall, "peak_rss_mb": median
    peak RSS, "runs": the walls}."""
    runs = {}
    for _ in range(repeats):
        for label, command in commands.items():
            wall, rss, _ = run_measured(command, label)
            runs.setdefault(label, []).append((wall, rss))
    return {label: {"seconds": statistics.median(w for w, _ in values), "peak_rss_mb": statistics.median(r for _, r in values),
                    "runs": [w for w, _ in values]} for label, values in runs.items()}


def resampled_pbmc3k(build, workdir, cells, pbmc3k):
    """WORKDIR/pbmcNk.h5ad: `cells` cells resampled from pbmc3k by bench/io/resample_h5ad (made
    once, seed 42, then reused: bench/annotate's query is bench/train's reference)."""
    path = os.path.join(workdir, f"pbmc{cells // 1000}k.h5ad")
    if not os.path.exists(path):
        os.makedirs(workdir, exist_ok=True)
        subprocess.run([os.path.join(build, "bench", "resample_h5ad"), pbmc3k, path, str(cells)], check=True)
    return path


def thinned_counts(counts, total, seed=0):
    """Each cell (row) of the count matrix `counts` thinned binomially to about `total` counts
    (cells below it kept), as float32 CSR."""
    import numpy as np
    import scipy.sparse as sp
    x = sp.csr_matrix(counts).astype(np.int64)
    rng = np.random.default_rng(seed)
    values = np.zeros(x.data.shape, dtype=np.float32)
    for i in range(x.shape[0]):
        start, end = x.indptr[i], x.indptr[i + 1]
        keep = min(1.0, total / max(1, x.data[start:end].sum()))
        values[start:end] = rng.binomial(x.data[start:end], keep)
    out = sp.csr_matrix((values, x.indices, x.indptr), shape=x.shape)
    out.eliminate_zeros()
    return out
