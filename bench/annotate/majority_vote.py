#!/usr/bin/python3
"""Majority voting over clusters of the query (`annotate --over-clustering obs:COLUMN`, CellTypist's
`majority_voting`): does it make the default labels more right, and with which clusters?

CellTypist, asked to vote without clusters, over-clusters the query itself: a neighbour graph of
the query's PCA, then Leiden at a resolution growing with the cells (5 below 5,000 cells, 10
below 20,000, ...). This bench builds those clusters with the reference tools (scikit-learn's PCA
and exact 15 nearest neighbours, python3-leidenalg's RBConfiguration partition; as scanpy's
recipe: log1p CP10k, the 2,000 most variable genes, scaled and clipped at 10, 50 components) at
resolutions 1, 5 and 10, writes them into the query, and runs celltyper's own `annotate
--over-clustering` on each; the clusters a study already has (pbmc68k_reduced's `louvain`) too.
Every model is `celltyper train` with default settings, every query `celltyper annotate` with
default settings plus `--over-clustering`. Metrics on the query's own labels mapped to CL ids
(../shared/data/label_map_to_cell_ontology.tsv): exact accuracy and macro-F1 over the truth's terms.

    /usr/bin/python3 bench/annotate/majority_vote.py [--build build] [--out bench/results/majority_vote]

Writes OUT.json and OUT.md. Needs python3-leidenalg (scripts/test.sh installs it).
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
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import NearestNeighbors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
RESOLUTIONS = [1, 5, 10]


def log(message):
    print(f"[majority_vote] {message}", file=sys.stderr, flush=True)


def read(relative, layer=None):
    path = os.path.join(SHARED, relative)
    if not os.path.exists(path):
        sys.exit(f"bench/annotate/majority_vote: {path} is missing: this benchmark needs ../shared/data")
    adata = anndata.read_h5ad(path)
    if layer is not None:
        adata.X = adata.layers[layer]
    return adata


def leiden_clusters(adata, is_log, resolution):
    """scanpy's default recipe with scikit-learn and leidenalg: cluster ids per cell."""
    import igraph
    import leidenalg

    X = sp.csr_matrix(adata.X).astype(np.float64)
    if not is_log:
        totals = np.asarray(X.sum(axis=1)).ravel()
        totals[totals == 0] = 1
        X = sp.diags(1e4 / totals) @ X
        X.data = np.log1p(X.data)
    X = X.toarray()
    X = X[:, np.argsort(-X.var(axis=0))[:2000]]
    X = np.clip((X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-8), -10, 10)
    pcs = PCA(n_components=min(50, X.shape[0] - 1), random_state=0).fit_transform(X)
    _, neighbours = NearestNeighbors(n_neighbors=15).fit(pcs).kneighbors(pcs)
    edges = {(min(i, int(j)), max(i, int(j))) for i, row in enumerate(neighbours) for j in row[1:]}
    graph = igraph.Graph(n=len(neighbours), edges=sorted(edges))
    partition = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                         resolution_parameter=resolution, seed=0)
    return np.asarray(partition.membership)


def to_cl(label_map, dataset, labels):
    rows = label_map[label_map["dataset"] == dataset]
    mapping = dict(zip(rows["label"], rows["cl_id"]))
    return np.asarray([mapping.get(str(label), f"unmapped:{label}") for label in labels])


def scores(truth_cl, predicted_cl):
    terms = sorted(set(truth_cl))
    return dict(accuracy=float(accuracy_score(truth_cl, predicted_cl)),
                macro_f1=float(f1_score(truth_cl, predicted_cl, labels=terms, average="macro", zero_division=0)))


def run_pair(celltyper, workdir, label_map, name, ref, ref_truth, ref_dataset, query, query_truth, query_dataset,
             is_log, study_clusters=None):
    folder = os.path.join(workdir, name.replace(" ", "_").replace(">", "to"))
    os.makedirs(folder, exist_ok=True)
    obs = pd.DataFrame({"truth": pd.Categorical(ref_truth)}, index=ref.obs_names)
    anndata.AnnData(X=sp.csr_matrix(ref.X), obs=obs, var=pd.DataFrame(index=ref.var_names)).write_h5ad(os.path.join(folder, "ref.h5ad"))
    columns = {"truth": pd.Categorical(query_truth)}
    votes = {}
    for resolution in RESOLUTIONS:
        clusters = leiden_clusters(query, is_log, resolution)
        columns[f"leiden_{resolution}"] = pd.Categorical(clusters.astype(str))
        votes[f"Leiden, resolution {resolution}"] = (f"leiden_{resolution}", len(np.unique(clusters)))
    if study_clusters is not None:
        columns["study_clusters"] = pd.Categorical(np.asarray(study_clusters).astype(str))
        votes["the study's clusters"] = ("study_clusters", len(np.unique(study_clusters)))
    obs = pd.DataFrame(columns, index=query.obs_names)
    query_path = os.path.join(folder, "query.h5ad")
    anndata.AnnData(X=sp.csr_matrix(query.X), obs=obs, var=pd.DataFrame(index=query.var_names)).write_h5ad(query_path)
    model = os.path.join(folder, "model.h5")
    subprocess.run([celltyper, "train", "--reference", os.path.join(folder, "ref.h5ad"), "--label", "obs:truth", "--out", model],
                   check=True, capture_output=True)
    truth_cl = to_cl(label_map, query_dataset, query_truth)
    rows = []
    csv = os.path.join(folder, "labels.csv")
    subprocess.run([celltyper, "annotate", "--model", model, "--input", query_path, "--csv", csv], check=True, capture_output=True)
    per_cell = pd.read_csv(csv, index_col=0)["celltyper_label"].astype(str).values
    rows.append(dict(pair=name, labels="per cell (default)", clusters=None, **scores(truth_cl, to_cl(label_map, ref_dataset, per_cell))))
    for what, (column, n_clusters) in votes.items():
        subprocess.run([celltyper, "annotate", "--model", model, "--input", query_path, "--csv", csv,
                        "--over-clustering", f"obs:{column}"], check=True, capture_output=True)
        voted = pd.read_csv(csv, index_col=0)["celltyper_majority_vote"].astype(str).values
        rows.append(dict(pair=name, labels=f"majority vote, {what}", clusters=n_clusters,
                         **scores(truth_cl, to_cl(label_map, ref_dataset, voted))))
    for row in rows:
        log(f"{row['pair']}: {row['labels']}: accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--workdir", default="/tmp/celltyper_majority_vote")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "majority_vote"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    os.makedirs(args.workdir, exist_ok=True)
    started = time.time()
    label_map = pd.read_csv(os.path.join(SHARED, "label_map_to_cell_ontology.tsv"), sep="\t")

    pbmc3k = read("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad")
    pbmc68k = read("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad", layer="counts")
    savercat = read("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad")
    pancreas = read("pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad")
    half = np.random.default_rng(0).random(pbmc3k.n_obs) < 0.5
    p3, p68, sv, pa = "pbmc3k-seurat-labels", "pbmc68k_reduced", "savercat-pbmc-3tech", "pancreas-xin-wang-scclassify"
    rows = []
    rows += run_pair(celltyper, args.workdir, label_map, "pbmc3k A > pbmc3k B", pbmc3k[half], pbmc3k.obs["celltype"].values[half], p3,
                     pbmc3k[~half], pbmc3k.obs["celltype"].values[~half], p3, False)
    rows += run_pair(celltyper, args.workdir, label_map, "pbmc3k > pbmc68k_reduced", pbmc3k, pbmc3k.obs["celltype"].values, p3,
                     pbmc68k, pbmc68k.obs["bulk_labels"].values, p68, False, study_clusters=pbmc68k.obs["louvain"].values)
    rows += run_pair(celltyper, args.workdir, label_map, "pbmc3k > savercat", pbmc3k, pbmc3k.obs["celltype"].values, p3,
                     savercat, savercat.obs["celltype"].values, sv, False)
    for a, b in [("V2", "V3"), ("V3", "VDJ")]:
        ref, query = savercat[savercat.obs["tech"] == a], savercat[savercat.obs["tech"] == b]
        rows += run_pair(celltyper, args.workdir, label_map, f"savercat {a} > {b}", ref, ref.obs["celltype"].values, sv,
                         query, query.obs["celltype"].values, sv, False)
    xin, wang = pancreas[pancreas.obs["study"].str.startswith("Xin")], pancreas[pancreas.obs["study"].str.startswith("Wang")]
    rows += run_pair(celltyper, args.workdir, label_map, "Xin > Wang", xin, xin.obs["celltype"].values, pa,
                     wang, wang.obs["celltype"].values, pa, True)
    rows += run_pair(celltyper, args.workdir, label_map, "Wang > Xin", wang, wang.obs["celltype"].values, pa,
                     xin, xin.obs["celltype"].values, pa, True)

    seconds = time.time() - started
    revision = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(args.out + ".json", "w") as handle:
        json.dump(dict(revision=revision, seconds=seconds, rows=rows), handle, indent=1)
    frame = pd.DataFrame(rows)
    lines = ["# Majority voting over clusters of the query (bench/annotate/majority_vote.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/majority_vote.py`; celltyper {revision}; {seconds:.0f} s on {os.cpu_count()} cores. "
             "Default `train` and `annotate`; the vote rows add `--over-clustering obs:COLUMN` (`celltyper_majority_vote`). "
             "Leiden clusters as CellTypist makes them when asked to vote without clusters (scanpy's recipe: log1p CP10k, 2,000 most "
             "variable genes, 50 PCs, 15 neighbours; leidenalg RBConfiguration; CellTypist uses resolution 5 below 5,000 cells). "
             "Metrics on CL ids of the query's own labels; macro-F1 over the truth's terms.", "",
             "| pair | labels | clusters | accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for row in rows:
        clusters = "" if row["clusters"] is None else str(row["clusters"])
        lines.append(f"| {row['pair']} | {row['labels']} | {clusters} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} |")
    lines += ["", "Means over the pairs:", "", "| labels | accuracy | macro-F1 | pairs |", "|---|---|---|---|"]
    for labels, group in frame.groupby("labels", sort=False):
        lines.append(f"| {labels} | {group['accuracy'].mean():.3f} | {group['macro_f1'].mean():.3f} | {len(group)} |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
