#!/usr/bin/python3
"""References cut to their highly variable genes, annotating queries that measure every gene.

A reference saved after `adata = adata[:, adata.var.highly_variable]` keeps 2,000 genes in X and
in its counts layer (raw, when set, keeps every gene; this bench has none). Its values were
normalised over every gene (log1p of CP10k or of the median total) or are counts of those genes
only; a query measures all its genes. Since session 31 a model sums a query cell's library over
the genes its references measured (ExpressionOptions::size_factor_genes), as the references' own
cells were; before, over every gene of the query, which made the query's values of the 2,000
genes several times smaller than the reference's.

Cells: pbmc3k (Seurat labels), split in two by cell parity: even cells are the reference, odd
cells the query. Genes: the 2,000 most variable of the reference cells (scanpy's "seurat" flavour:
log1p(CP10k) dispersion z-scored within 20 bins of mean). References, default `train` flags:

  * counts cut     the counts of those genes (a counts layer subset with the rest of the AnnData);
  * log1p cut      log1p(CP10k over every gene) of those genes, no counts anywhere (an X subset);
  * median cut     log1p(counts x median total / total, over every gene) of those genes;
  * all genes      the reference's counts of every gene: the figure a cut reference should reach.

Each reference also trains a GenePT-w model (`--features genept`, the default gene store).
Queries, default `annotate`: the odd cells' counts of every gene, and the same thinned binomially
to 1,000 and 500 counts per cell (seed 0). Accuracy and macro-F1 against the Seurat labels.

With `--before DIR` (a folder holding an earlier `celltyper`) every row is also run with it.
Peer, the same files: scikit-learn's logistic regression as CellTypist trains it (log1p(CP10k)
features standardised and clipped at 10, C = 1), the reference's values as they are stored (its
counts normalised over the genes it stores), each query cell log1p(CP10k) over all its genes, as
CellTypist normalises a query.

    /usr/bin/python3 bench/annotate/gene_subset_reference.py [--build build] [--before DIR]

Writes bench/results/gene_subset_reference.{json,md}.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

PBMC3K = os.path.join(ROOT, "..", "shared", "data", "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
N_GENES = 2000


def log(message):
    print(f"[gene_subset_reference] {message}", file=sys.stderr, flush=True)


def normalised(counts, target=None):
    """log1p(counts x target / total) per cell; target None = the median total (scanpy's default)."""
    totals = np.asarray(counts.sum(axis=1)).ravel()
    target = np.median(totals) if target is None else target
    x = sp.csr_matrix(sp.diags(target / np.maximum(totals, 1)) @ counts, dtype=np.float64)
    x.data = np.log1p(x.data)
    return x.astype(np.float32)


def variable_genes(counts, n_genes):
    """The `n_genes` most variable genes (scanpy's "seurat" flavour on log1p(CP10k))."""
    x = normalised(counts, 1e4).astype(np.float64)
    expm1 = x.copy()
    expm1.data = np.expm1(expm1.data)
    mean = np.asarray(expm1.mean(axis=0)).ravel()
    mean_sq = np.asarray(expm1.multiply(expm1).mean(axis=0)).ravel()
    var = (mean_sq - mean ** 2) * counts.shape[0] / (counts.shape[0] - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.log(var / mean)
        log_mean = np.log1p(mean)
    frame = pd.DataFrame({"mean": log_mean, "dispersion": dispersion})
    frame["bin"] = pd.cut(frame["mean"], bins=20)
    grouped = frame.groupby("bin", observed=False)["dispersion"]
    z = (frame["dispersion"] - grouped.transform("mean")) / grouped.transform("std")
    z = z.fillna(-np.inf).to_numpy()
    z[mean == 0] = -np.inf
    return np.sort(np.argsort(-z)[:n_genes])


def write(path, x, obs, var):
    anndata.AnnData(X=x, obs=obs.copy(), var=var.copy()).write_h5ad(path)


def macro_f1(truth, predicted):
    f1 = []
    for label in np.unique(truth):
        tp = np.sum((truth == label) & (predicted == label))
        precision = tp / max(1, np.sum(predicted == label))
        recall = tp / max(1, np.sum(truth == label))
        f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(f1))


def peer_logreg(reference_x, is_log, labels, genes, queries):
    """scikit-learn's LogisticRegression on CellTypist's features (see the docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    train = sp.csr_matrix(reference_x, dtype=np.float64) if is_log else normalised(reference_x, 1e4).astype(np.float64)
    scaler = StandardScaler().fit(train.toarray())
    started = time.perf_counter()
    model = LogisticRegression(C=1.0, max_iter=1000).fit(np.clip(scaler.transform(train.toarray()), None, 10), labels)
    result = {"train_s": time.perf_counter() - started}
    for name, (counts, truth) in queries.items():
        x = normalised(counts, 1e4)[:, genes].astype(np.float64)
        predicted = model.predict(np.clip(scaler.transform(x.toarray()), None, 10))
        result[name] = {"accuracy": float(np.mean(predicted == truth)), "macro_f1": macro_f1(truth, predicted)}
    return result


def score(binary, reference, queries, workdir, tag, extra=()):
    """Train on `reference` (default flags and `extra`), annotate each query: accuracy and macro-F1,
    or the error line of a refused query."""
    model = os.path.join(workdir, f"{tag}.model")
    _, train_s = measure.run_timed([binary, "-q", "train", "-r", reference, "-l", "obs:celltype", "-o", model, *extra], "gene_subset_reference")
    result = {"train_s": train_s}
    for name, query in queries.items():
        out = os.path.join(workdir, f"{tag}_{name}.h5ad")
        annotated = subprocess.run([binary, "-q", "annotate", "-m", model, "-i", query, "-o", out], capture_output=True, text=True)
        if annotated.returncode != 0:
            result[name] = {"refused": annotated.stderr.strip().splitlines()[-1].replace(os.path.dirname(query) + os.sep, "")}
            continue
        obs = anndata.read_h5ad(out, backed="r").obs
        truth = obs["celltype"].astype(str).to_numpy()
        predicted = obs["celltyper_label"].astype(str).to_numpy()
        result[name] = {"accuracy": float(np.mean(truth == predicted)), "macro_f1": macro_f1(truth, predicted)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", help="folder holding an earlier celltyper binary (the reference run)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "gene_subset_reference"))
    args = parser.parse_args()
    started = time.perf_counter()
    a = anndata.read_h5ad(PBMC3K)
    counts = sp.csr_matrix(a.X, dtype=np.float32)
    obs = a.obs[["celltype"]].copy()
    var = pd.DataFrame(index=a.var_names)
    reference_rows = np.arange(a.n_obs) % 2 == 0
    ref_counts, query_counts = counts[reference_rows], counts[~reference_rows]
    ref_obs, query_obs = obs[reference_rows], obs[~reference_rows]
    genes = variable_genes(ref_counts, N_GENES)
    share = float(np.median(np.asarray(ref_counts[:, genes].sum(axis=1)).ravel() / np.asarray(ref_counts.sum(axis=1)).ravel()))
    log(f"{len(genes)} variable genes hold a median {share:.1%} of a reference cell's counts")
    workdir = tempfile.mkdtemp(prefix="celltyper-gene-subset-")
    references = {  # name: (matrix, var, log values?, the genes' columns)
        "counts cut to 2,000 genes": (ref_counts[:, genes], var.iloc[genes], False, genes),
        "log1p(CP10k) cut to 2,000 genes": (normalised(ref_counts, 1e4)[:, genes], var.iloc[genes], True, genes),
        "log1p(median total) cut to 2,000 genes": (normalised(ref_counts)[:, genes], var.iloc[genes], True, genes),
        "counts of every gene": (ref_counts, var, False, np.arange(counts.shape[1])),
    }
    paths = {}
    for i, (name, (x, genes_var, _, _)) in enumerate(references.items()):
        paths[name] = os.path.join(workdir, f"reference_{i}.h5ad")
        write(paths[name], sp.csr_matrix(x), ref_obs, genes_var)
    queries = {"every gene": query_counts, "1,000 counts": measure.thinned_counts(query_counts, 1000),
               "500 counts": measure.thinned_counts(query_counts, 500)}
    query_paths = {}
    for i, (name, x) in enumerate(queries.items()):
        query_paths[name] = os.path.join(workdir, f"query_{i}.h5ad")
        write(query_paths[name], x, query_obs, var)
    builds = [("after", os.path.join(args.build, "celltyper"))]
    if args.before:
        builds.insert(0, ("before", os.path.join(args.before, "celltyper")))
    truth = query_obs["celltype"].astype(str).to_numpy()
    rows = []
    for name, (x, _, is_log, columns) in references.items():
        for route, extra in (("", ()), (", --features genept", ("--features", "genept"))):
            for build, binary in builds:
                tag = f"{build}_{list(references).index(name)}{'_genept' if extra else ''}"
                result = score(binary, paths[name], query_paths, workdir, tag, extra)
                rows.append({"reference": name, "build": build + route, **result})
                log(f"{name} / {build}{route}: {result}")
        result = peer_logreg(x, is_log, ref_obs["celltype"].astype(str).to_numpy(), columns, {q: (queries[q], truth) for q in queries})
        rows.append({"reference": name, "build": "scikit-learn logreg (CellTypist's method)", **result})
        log(f"{name} / scikit-learn: {result}")
    commit = measure.git_commit(ROOT)
    report = {"command": "/usr/bin/python3 bench/annotate/gene_subset_reference.py" + (" --before DIR" if args.before else ""),
              "commit": commit, "variable_gene_count_share": share, "rows": rows, "wall_seconds": time.perf_counter() - started,
              "machine": f"{os.cpu_count()} cores"}
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    lines = ["# References cut to their variable genes (bench/annotate/gene_subset_reference.py)", "",
             f"Command: `{report['command']}`; celltyper {commit}; {report['wall_seconds']:.0f} s on {report['machine']}.", "",
             f"pbmc3k split by cell parity: even cells the reference (default `train`), odd cells the query (default `annotate`, "
             f"every gene measured; also thinned to 1,000 and 500 counts per cell). The {N_GENES} variable genes hold a median "
             f"{share:.1%} of a reference cell's counts. Accuracy / macro-F1 against the Seurat labels; `--features genept` rows: "
             f"a GenePT-w model of the same reference (default gene store). Peer: scikit-learn's "
             f"LogisticRegression on CellTypist's features, the reference as stored, queries log1p(CP10k) over every gene.", "",
             "| reference | method | every gene | 1,000 counts | 500 counts | train s |", "|---|---|---|---|---|---:|"]
    for r in rows:
        cells = " | ".join("refused" if "refused" in r[q] else f"{r[q]['accuracy']:.3f} / {r[q]['macro_f1']:.3f}" for q in queries)
        method = r["build"] if "scikit" in r["build"] else f"celltyper ({r['build']})"
        lines.append(f"| {r['reference']} | {method} | {cells} | {r['train_s']:.1f} |")
    refusals = sorted({r[q]["refused"] for r in rows for q in queries if "refused" in r[q]})
    if refusals:
        lines += ["", "Refused queries said:", ""] + [f"    {line}" for line in refusals]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
