#!/usr/bin/python3
"""Training at speed (issue #18, item 4): the default `celltyper train` on a 100k-cell reference,
against the peers users would train on the same cells, in the same run.

The reference: 100,000 cells resampled from pbmc3k (real cells, `bench/io/resample_h5ad`, the
file bench/annotate uses), labels obs['celltype'] (9 classes). Timed, wall seconds, read to model:
  * `celltyper train --reference REF --label obs:celltype --out M.h5` with no other flag (the
    default: expression features over 3,000 variable genes, class-balanced logistic regression,
    a 20% validation split) and with `--validation-fraction 0` (every cell trains);
  * scikit-learn LogisticRegression (lbfgs, max_iter 1000, the CellTypist method) on log1p-CP10k,
    standardised and clipped at 10, over the same number of variable genes (Seurat's dispersion
    rule on the reference, as bench/panels' peers), including anndata's read and the
    normalisation;
  * XGBoost (python3-xgboost, hist, 100 rounds, depth 6) on the same features;
  * reference mode, `celltyper annotate --reference REF --label obs:celltype --input pbmc3k`
    (trains on the fly, every cell, then annotates 2,638 cells).
Peak RSS of each process. The peers run with --threads threads (default: every core), as celltyper does.

    /usr/bin/python3 bench/train/run.py [--cells 100000] [--threads N] [--repeats 3] [--tag TAG]

Writes bench/results/train.json and bench/results/train.md (train_TAG.* with --tag).
"""
import argparse
import json
import os
import platform
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from measure import resampled_pbmc3k, run_measured  # noqa: E402
SHARED = os.path.join(ROOT, "..", "shared", "data")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")

PEER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import anndata, numpy as np, scipy.sparse as sp
path, method, n_genes, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
a = anndata.read_h5ad(path)
X = sp.csr_matrix(a.X, dtype=np.float64)
y = a.obs["celltype"].astype(str).values
totals = np.asarray(X.sum(axis=1)).ravel(); totals[totals == 0] = 1
X = sp.csr_matrix(sp.diags(1e4 / totals) @ X); X.data = np.log1p(X.data)
# Seurat-style variable genes: dispersion of expm1 means, z-scored within 20 bins of mean.
mean = np.asarray(X.mean(axis=0)).ravel(); sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
var = np.maximum(sq - mean ** 2, 0) * X.shape[0] / max(X.shape[0] - 1, 1)
with np.errstate(divide="ignore", invalid="ignore"):
    disp = np.log(np.where(mean > 0, var / mean, np.nan)); logm = np.log1p(mean)
bins = np.digitize(logm, np.linspace(np.nanmin(logm), np.nanmax(logm), 21)[1:-1])
z = np.full_like(disp, -np.inf)
for b in np.unique(bins):
    m = (bins == b) & np.isfinite(disp)
    if m.sum() > 1 and np.std(disp[m]) > 0:
        z[m] = (disp[m] - disp[m].mean()) / disp[m].std()
genes = np.argsort(-z)[:n_genes]
X = X[:, genes]
t_fit = time.perf_counter()
if method == "sklearn-logreg":
    from sklearn.linear_model import LogisticRegression
    Z = X.toarray(); mu = Z.mean(0); sd = Z.std(0); sd[sd == 0] = 1
    Z = np.clip((Z - mu) / sd, -10, 10)
    LogisticRegression(C=1.0, max_iter=1000, n_jobs=threads).fit(Z, y)
else:
    import xgboost
    classes = sorted(set(y)); code = {c: i for i, c in enumerate(classes)}
    xgboost.XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.3, tree_method="hist", n_jobs=threads,
                          random_state=0).fit(X, np.array([code[c] for c in y]))
fit = time.perf_counter() - t_fit
print(json.dumps({"seconds": time.perf_counter() - t0, "fit_seconds": fit,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--genes", type=int, default=3000, help="variable genes of the peers (celltyper's default panel size)")
    parser.add_argument("--workdir", default="/tmp/celltyper-bench-annotate")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--tag", help="write bench/results/train_TAG.{json,md}")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each celltyper row (median; the peers run once)")
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    for needed in (PBMC3K, celltyper, resample):
        if not os.path.exists(needed):
            sys.exit(f"bench/train: {needed} is missing")
    os.makedirs(args.workdir, exist_ok=True)
    reference = resampled_pbmc3k(args.build, args.workdir, args.cells, PBMC3K)
    model = os.path.join(args.workdir, "train_bench_model.h5")
    rows = []

    def celltyper_row(name, command):
        """Median wall of --repeats runs (and the largest peak RSS)."""
        runs = [run_measured(command, "bench/train")[:2] for _ in range(args.repeats)]
        rows.append(dict(method=name, seconds=statistics.median(w for w, _ in runs), peak_rss_mb=max(r for _, r in runs),
                         runs=[w for w, _ in runs]))
        print(json.dumps(rows[-1]), flush=True)

    for name, extra in (("celltyper train (default)", []), ("celltyper train --validation-fraction 0", ["--validation-fraction", "0"])):
        celltyper_row(name, [celltyper, "--quiet", "train", "--reference", reference, "--label", "obs:celltype", "--out", model,
                             "--threads", str(args.threads)] + extra)
    # Reference mode: train on the fly inside annotate (every cell trains, no validation split),
    # then annotate pbmc3k (2,638 cells) with that model.
    annotated = os.path.join(args.workdir, "train_bench_annotated.h5ad")
    celltyper_row("celltyper annotate --reference (train + annotate pbmc3k)",
                  [celltyper, "--quiet", "annotate", "--reference", reference, "--label", "obs:celltype", "--input", PBMC3K,
                   "--out", annotated, "--threads", str(args.threads)])
    for method in ("sklearn-logreg", "xgboost"):
        wall, rss, out = run_measured(["/usr/bin/python3", "-c", PEER, reference, method, str(args.genes), str(args.threads)],
                                      "bench/train", capture=True)
        reported = json.loads(out.strip().splitlines()[-1])
        rows.append(dict(method=method, seconds=wall, fit_seconds=reported["fit_seconds"], peak_rss_mb=rss))
        print(json.dumps(rows[-1]), flush=True)
    default = rows[0]["seconds"]
    for row in rows:
        row["ratio_to_default"] = row["seconds"] / default
    report = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), load=os.getloadavg()), cells=args.cells,
                  threads=args.threads, genes=args.genes, rows=rows)
    out_dir = os.path.join(ROOT, "bench", "results")
    name = "train" if args.tag is None else f"train_{args.tag}"
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [f"# train: {args.cells} reference cells resampled from pbmc3k (9 classes), read to model", "",
             f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} cores, load {report['machine']['load'][0]:.1f}; "
             f"{args.threads} threads for every method; celltyper rows: median of {args.repeats} runs, peers: one run each. Reproduce: `/usr/bin/python3 bench/train/run.py{'' if args.cells == 100000 else f' --cells {args.cells}'}{'' if args.tag is None else f' --tag {args.tag}'}`.", "",
             f"Peers: log1p-CP10k over {args.genes} variable genes of the reference, anndata read and normalisation included "
             "(fit alone in its own column).", "",
             "| method | wall s | fit s | peak RSS MB | x default |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        fit = f"{row['fit_seconds']:.1f}" if "fit_seconds" in row else ""
        lines.append(f"| {row['method']} | {row['seconds']:.1f} | {fit} | {row['peak_rss_mb']:.0f} | {row['ratio_to_default']:.1f}x |")
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
