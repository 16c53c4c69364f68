#!/usr/bin/python3
"""Imaging-panel queries (Xenium, MERSCOPE, CosMx): a few hundred genes and a few hundred
transcripts per cell, typed with a scRNA-seq reference. How the default labels hold up as the
query gets shallower, against scikit-learn's logistic regression trained on the same reference
cells restricted to the panel (with and without thinned copies of them).

pbmc3k is split in two halves by cell type (seed 0): one half is the reference (all genes; a
default `celltyper train`), the other the query, restricted to a panel of about 400 genes chosen the way
vendors choose one (the 45 genes of each type whose mean log1p CP10k exceeds the other types'
most, housekeeping genes, then the most variable) plus 20 control-probe features
(NegControlProbe_*, counts of rare genes outside the panel), then binomially thinned to medians of
60, 150, 300 and 500 transcripts per cell (the full panel holds about 1,000). Every query is
`celltyper annotate` with default settings (the model refitted on the panel's genes); with
`--baseline BUILD`, also another build's (e.g. one from before depth matching).

    /usr/bin/python3 bench/annotate/spatial_depth.py [--build build] [--baseline OTHER_BUILD] [--out bench/results/spatial_depth]

Writes OUT.json and OUT.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
DEPTHS = [60, 150, 300, 500, None]  # None: the full panel
HOUSEKEEPING = ["ACTB", "GAPDH", "B2M", "PTPRC", "RPLP0", "EEF1A1", "TBP", "HPRT1", "PGK1", "PPIA", "UBC", "YWHAZ", "TMSB4X", "MALAT1"]


def log(message):
    print(f"[spatial_depth] {message}", file=sys.stderr, flush=True)


def log1p_cp10k(X):
    X = sp.csr_matrix(X, dtype=np.float64)
    totals = np.asarray(X.sum(axis=1)).ravel()
    totals[totals == 0] = 1
    X = sp.diags(1e4 / totals) @ X
    X.data = np.log1p(X.data)
    return X


def thin(X, keep, rng):
    X = sp.csr_matrix(X).astype(np.int64)
    X.data = rng.binomial(X.data, np.repeat(keep, np.diff(X.indptr)))
    X.eliminate_zeros()
    return X.astype(np.float32)


def choose_panel(reference, genes):
    L = log1p_cp10k(reference.X).tocsc()
    types = reference.obs["celltype"].astype(str).values
    panel = []
    for cell_type in np.unique(types):
        inside = types == cell_type
        score = np.asarray(L[inside].mean(axis=0)).ravel() - np.asarray(L[~inside].mean(axis=0)).ravel()
        panel += [g for g in genes[np.argsort(-score)] if g not in panel][:45]
    panel += [g for g in HOUSEKEEPING if g in set(genes) and g not in panel]
    mean = np.asarray(L.mean(axis=0)).ravel()
    variance = np.asarray(L.multiply(L).mean(axis=0)).ravel() - mean ** 2
    for g in genes[np.argsort(-variance)]:
        if len(panel) >= 400:
            break
        if g not in panel:
            panel.append(g)
    return panel


def peer(reference, panel_index, truth_types, query_X, copies, rng):
    """scikit-learn logistic regression (C=1, balanced) on log1p CP10k of the panel genes."""
    X = sp.csr_matrix(reference.X)[:, panel_index]
    y = reference.obs["celltype"].astype(str).values
    if copies:
        keep = rng.uniform(0.1, 0.5, X.shape[0])
        X = sp.vstack([X, thin(X, keep, rng)])
        y = np.concatenate([y, y])
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(log1p_cp10k(X), y)
    return model.predict(log1p_cp10k(query_X))


def scores(truth, predicted):
    memory = truth == "Memory CD4 T"
    return dict(accuracy=float(accuracy_score(truth, predicted)),
                macro_f1=float(f1_score(truth, predicted, average="macro", zero_division=0)),
                memory_cd4_recall=float(np.mean(predicted[memory] == "Memory CD4 T")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--baseline", help="another build folder to run beside (e.g. one from before depth matching)")
    parser.add_argument("--workdir", default="/tmp/celltyper_spatial_depth")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "spatial_depth"))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    started = time.time()
    path = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
    if not os.path.exists(path):
        sys.exit(f"bench/annotate/spatial_depth: {path} is missing: this benchmark needs ../shared/data")
    data = anndata.read_h5ad(path)
    data.X = sp.csr_matrix(data.X, dtype=np.float32)
    rng = np.random.default_rng(0)
    reference_rows, query_rows = [], []
    for cell_type in data.obs["celltype"].unique():
        rows = rng.permutation(np.flatnonzero(data.obs["celltype"].values == cell_type))
        reference_rows += list(rows[: len(rows) // 2])
        query_rows += list(rows[len(rows) // 2:])
    reference, query = data[np.sort(reference_rows)].copy(), data[np.sort(query_rows)].copy()
    genes = np.asarray(data.var_names)
    panel = choose_panel(reference, genes)
    panel_index = [int(np.flatnonzero(genes == g)[0]) for g in panel]
    detection = np.asarray((sp.csr_matrix(reference.X) > 0).mean(axis=0)).ravel()
    outside = [i for i in range(len(genes)) if genes[i] not in set(panel) and 0.005 < detection[i] < 0.03]
    controls = rng.choice(outside, 20, replace=False)
    reference_path = os.path.join(args.workdir, "reference.h5ad")
    anndata.AnnData(X=reference.X, obs=reference.obs[["celltype"]].copy(), var=pd.DataFrame(index=genes)).write_h5ad(reference_path)
    truth = query.obs["celltype"].astype(str).values
    Q = sp.hstack([sp.csr_matrix(query.X)[:, panel_index], sp.csr_matrix(query.X)[:, controls]]).tocsr()
    var = pd.DataFrame(index=panel + [f"NegControlProbe_{k:05d}" for k in range(len(controls))])
    full_depth = float(np.median(np.asarray(Q[:, : len(panel)].sum(axis=1)).ravel()))
    builds = [("celltyper default", args.build)] + ([("baseline build, default", args.baseline)] if args.baseline else [])
    models = {}
    for name, build in builds:
        model = os.path.join(args.workdir, f"model_{len(models)}.h5")
        subprocess.run([os.path.join(build, "celltyper"), "train", "-r", reference_path, "-l", "obs:celltype", "-o", model, "-q"], check=True)
        models[name] = (build, model)
    rows = []
    for depth in DEPTHS:
        keep = np.full(Q.shape[0], 1.0) if depth is None else np.full(Q.shape[0], min(1.0, depth / full_depth))
        X = Q if depth is None else thin(Q, keep, np.random.default_rng(1))
        median = float(np.median(np.asarray(X[:, : len(panel)].sum(axis=1)).ravel()))
        query_path = os.path.join(args.workdir, f"query_{depth or 'full'}.h5ad")
        anndata.AnnData(X=X, obs=pd.DataFrame(index=query.obs_names), var=var).write_h5ad(query_path)
        label = f"{median:.0f}" + (" (full panel)" if depth is None else "")
        for name, (build, model) in models.items():
            csv = os.path.join(args.workdir, "labels.csv")
            run = subprocess.run([os.path.join(build, "celltyper"), "annotate", "-m", model, "-i", query_path, "--csv", csv],
                                 check=True, capture_output=True, text=True)
            predicted = pd.read_csv(csv, index_col=0, dtype={"obs_name": str}, keep_default_na=False)["celltyper_label"].astype(str).values
            rows.append(dict(depth=label, method=name, depth_matched="thinned to that depth" in run.stderr, **scores(truth, predicted)))
        for copies in (False, True):
            predicted = peer(reference, panel_index, truth, X[:, : len(panel)], copies, np.random.default_rng(2))
            rows.append(dict(depth=label, method="scikit-learn logreg" + (", thinned copies 10-50%" if copies else ""), depth_matched=False,
                             **scores(truth, predicted)))
        for row in rows[-len(models) - 2:]:
            log(f"median {row['depth']}: {row['method']}: accuracy {row['accuracy']:.3f}, macro-F1 {row['macro_f1']:.3f}, "
                f"Memory CD4 T recall {row['memory_cd4_recall']:.2f}")
    seconds = time.time() - started
    revision = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(args.out + ".json", "w") as handle:
        json.dump(dict(revision=revision, seconds=seconds, panel_genes=len(panel), full_panel_median=full_depth, rows=rows), handle, indent=1)
    lines = ["# Imaging-panel depths (bench/annotate/spatial_depth.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/spatial_depth.py{' --baseline BUILD' if args.baseline else ''}`; celltyper {revision}; "
             f"{seconds:.0f} s on {os.cpu_count()} cores. pbmc3k halves by type (seed 0): the reference half with all genes "
             f"(default `celltyper train`), the query half on a {len(panel)}-gene panel plus 20 control probes, thinned to the median "
             f"transcripts per cell below (the full panel: {full_depth:.0f}); default `celltyper annotate`. Peers: scikit-learn "
             "LogisticRegression(C=1, class_weight='balanced') on log1p CP10k of the panel genes of the same reference cells.", "",
             "| median transcripts | method | accuracy | macro-F1 | Memory CD4 T recall | refit on thinned reference cells |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['depth']} | {row['method']} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} | {row['memory_cd4_recall']:.2f} | "
                     f"{'yes' if row['depth_matched'] else ''} |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
