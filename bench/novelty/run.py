#!/usr/bin/python3
"""Query cells that resemble no reference cell type: how often `celltyper annotate` flags them
(obs `celltyper_unlike_reference`, the similarity check of reference_similarity.hpp) and when it
warns, on pairs of ../shared/data where every query type is in the reference (it should stay
quiet), where none is (it should fire), and where one type was left out of the reference (its
cells should be flagged, the others not).

Every model is `celltyper train` with default settings; every query is `celltyper annotate` with
default settings, then again with `--unassign-unlike` (the flagged cells Unassigned). Beside the check, the same cells judged by the classifier's own score
(`celltyper_score` < 0.5, what a user has without the check) as the reference point.

    /usr/bin/python3 bench/novelty/run.py [--build build] [--out bench/results/novelty]

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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402


def log(message):
    print(f"[novelty] {message}", file=sys.stderr, flush=True)


def read(relative):
    path = os.path.join(SHARED, relative)
    if not os.path.exists(path):
        sys.exit(f"bench/novelty: {path} is missing: this benchmark needs ../shared/data")
    return anndata.read_h5ad(path)


def write_subset(adata, mask, path, layer=None):
    """Cells of `adata` under `mask` as a new .h5ad: X (or `layer`), obs and var."""
    mask = np.asarray(mask)
    X = adata.layers[layer] if layer is not None else adata.X
    anndata.AnnData(X=X[mask], obs=adata.obs[mask].copy(), var=adata.var.copy()).write_h5ad(path)
    return path


def prepare(workdir):
    """The files every scenario uses: {name: (path, label column)}."""
    files = {}
    pbmc3k = read("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad")
    files["pbmc3k"] = (write_subset(pbmc3k, np.ones(pbmc3k.n_obs, bool), os.path.join(workdir, "pbmc3k.h5ad")), "celltype")
    half = np.random.default_rng(0).random(pbmc3k.n_obs) < 0.5
    files["pbmc3k A"] = (write_subset(pbmc3k, half, os.path.join(workdir, "pbmc3k_A.h5ad")), "celltype")
    files["pbmc3k B"] = (write_subset(pbmc3k, ~half, os.path.join(workdir, "pbmc3k_B.h5ad")), "celltype")
    for left_out in ["B", "NK"]:
        keep = half & (pbmc3k.obs["celltype"].astype(str) != left_out).values
        files[f"pbmc3k A without {left_out}"] = (write_subset(pbmc3k, keep, os.path.join(workdir, f"pbmc3k_A_no_{left_out}.h5ad")), "celltype")
    p68 = read("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad")
    files["pbmc68k"] = (write_subset(p68, np.ones(p68.n_obs, bool), os.path.join(workdir, "pbmc68k.h5ad"), layer="counts"), "bulk_labels")
    saver = read("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad")
    files["savercat"] = (write_subset(saver, np.ones(saver.n_obs, bool), os.path.join(workdir, "savercat.h5ad")), "celltype")
    for tech in ["V2", "V3", "VDJ"]:
        files[f"savercat {tech}"] = (write_subset(saver, (saver.obs["tech"].astype(str) == tech).values,
                                                  os.path.join(workdir, f"savercat_{tech}.h5ad")), "celltype")
    pancreas = read("pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad")
    study = pancreas.obs["study"].astype(str)
    xin = study.str.startswith("Xin").values
    files["pancreas"] = (write_subset(pancreas, np.ones(pancreas.n_obs, bool), os.path.join(workdir, "pancreas.h5ad")), "celltype")
    files["Xin"] = (write_subset(pancreas, xin, os.path.join(workdir, "xin.h5ad")), "celltype")
    files["Xin without alpha"] = (write_subset(pancreas, xin & (pancreas.obs["celltype"].astype(str) != "alpha").values,
                                               os.path.join(workdir, "xin_no_alpha.h5ad")), "celltype")
    # Wang measured 219 genes: its file keeps only them (the shared file pads the rest with zeros)
    wang = pancreas[~xin]
    if "in_wang_subset" in wang.var:
        wang = wang[:, wang.var["in_wang_subset"].astype(bool).values]
    files["Wang"] = (write_subset(wang, np.ones(wang.n_obs, bool), os.path.join(workdir, "wang.h5ad")), "celltype")
    cb3 = read("cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad")
    single = (cb3.obs["demuxlet_cls"].astype(str) == "SNG").values
    files["cellbench 3cl"] = (write_subset(cb3, np.ones(cb3.n_obs, bool), os.path.join(workdir, "cb3.h5ad")), "cell_line")
    for tech in ["CEL-seq2", "Drop-seq"]:
        files[f"cellbench {tech}"] = (write_subset(cb3, single & (cb3.obs["technology"].astype(str) == tech).values,
                                                   os.path.join(workdir, f"cb3_{tech}.h5ad")), "cell_line")
    cb5 = read("cellbench-mixology/cellbench_5cl_celseq2_3plates.h5ad")
    files["cellbench 5cl"] = (write_subset(cb5, (cb5.obs["demuxlet_cls"].astype(str) == "SNG").values, os.path.join(workdir, "cb5.h5ad")), "cell_line")
    # A "biopsy" measured on a short gene list: savercat's PBMCs (its file keeps 10,000 genes) with
    # the 5 lung cancer lines, on the genes both measure (cellbench's Ensembl ids as symbols): cells
    # of types a PBMC model lacks among blood cells, on a third of the reference's expression.
    genes = pd.read_csv(os.path.join(SHARED, "gene-annotations", "human_genes.tsv"), sep="\t", usecols=["symbol", "ensembl_ids"])
    symbol_of = {}
    for symbol, ids in zip(genes["symbol"], genes["ensembl_ids"]):
        if isinstance(ids, str):
            for ensembl in ids.split(","):
                symbol_of.setdefault(ensembl.strip(), symbol)
    lines = cb5[(cb5.obs["demuxlet_cls"].astype(str) == "SNG").values]
    symbols = pd.Series([symbol_of.get(ensembl) for ensembl in lines.var_names])
    unique = (symbols.notna() & ~symbols.duplicated(keep=False)).values
    shared = sorted(set(symbols[unique]) & set(saver.var_names))
    column_of = {symbol: k for k, symbol in enumerate(symbols)}
    lines_X = lines.X[:, [column_of[g] for g in shared]]
    saver_X = saver[:, shared].X
    import scipy.sparse as sparse
    biopsy = anndata.AnnData(
        X=sparse.vstack([sparse.csr_matrix(saver_X, dtype=np.float32), sparse.csr_matrix(lines_X, dtype=np.float32)]).tocsr(),
        obs=pd.DataFrame({"truth": np.concatenate([saver.obs["celltype"].astype(str).values, lines.obs["cell_line"].astype(str).values])},
                         index=[f"pbmc_{n}" for n in saver.obs_names] + [f"line_{n}" for n in lines.obs_names]),
        var=pd.DataFrame(index=shared))
    biopsy.write_h5ad(os.path.join(workdir, "biopsy.h5ad"))
    files["savercat + cellbench 5cl, shared genes"] = (os.path.join(workdir, "biopsy.h5ad"), "truth")
    mouse = read("actinn-tabula-muris-mouse/actinn_train_mouse.h5ad")
    mhalf = np.random.default_rng(1).random(mouse.n_obs) < 0.5
    files["mouse A"] = (write_subset(mouse, mhalf, os.path.join(workdir, "mouse_A.h5ad")), "celltype")
    files["mouse B"] = (write_subset(mouse, ~mhalf, os.path.join(workdir, "mouse_B.h5ad")), "celltype")
    return files


# (reference, query, kind, novel query labels): kind "quiet" = every query type is in the
# reference; "fire" = none is; "held out" = the listed labels are not.
SCENARIOS = [
    ("pbmc3k", "pbmc68k", "quiet", []),
    ("pbmc68k", "pbmc3k", "quiet", []),
    ("pbmc3k A", "pbmc3k B", "quiet", []),
    ("pbmc3k", "savercat", "quiet", []),
    ("savercat V2", "savercat V3", "quiet", []),
    ("savercat V3", "savercat VDJ", "quiet", []),
    ("savercat VDJ", "savercat V2", "quiet", []),
    ("cellbench CEL-seq2", "cellbench Drop-seq", "quiet", []),
    ("cellbench Drop-seq", "cellbench CEL-seq2", "quiet", []),
    ("cellbench 5cl", "cellbench 3cl", "quiet", []),
    ("mouse A", "mouse B", "quiet", []),
    ("pbmc3k", "cellbench 3cl", "fire", None),
    ("pbmc3k", "cellbench 5cl", "fire", None),
    ("pbmc3k", "pancreas", "fire", None),
    ("Xin", "pbmc3k", "fire", None),
    ("pbmc3k A without B", "pbmc3k B", "held out", ["B"]),
    ("pbmc3k A without B", "pbmc68k", "held out", ["CD19+ B"]),
    ("pbmc3k A without NK", "pbmc3k B", "held out", ["NK"]),
    ("Xin", "Wang", "held out", ["ductal", "stellate", "acinar"]),
    ("Xin without alpha", "Wang", "held out", ["alpha", "ductal", "stellate", "acinar"]),
    ("pbmc3k", "savercat + cellbench 5cl, shared genes", "held out", ["A549", "H1975", "H2228", "H838", "HCC827"]),
]


def auroc(novel_scores, known_scores):
    """P(a novel cell scores higher than a known one), ties half."""
    if len(novel_scores) == 0 or len(known_scores) == 0:
        return float("nan")
    both = np.concatenate([novel_scores, known_scores])
    ranks = pd.Series(both).rank().values
    n1, n0 = len(novel_scores), len(known_scores)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "novelty"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    binary = os.path.join(args.build, "celltyper")
    workdir = args.workdir or os.path.join("/tmp", f"novelty_bench_{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    files = prepare(workdir)
    models = {}
    rows = []
    for reference, query, kind, novel_labels in SCENARIOS:
        if reference not in models:
            path, column = files[reference]
            model = os.path.join(workdir, reference.replace(" ", "_") + ".model")
            measure.run_timed([binary, "train", "-r", path, "-l", f"obs:{column}", "-o", model, "--seed", "0"], f"train {reference}")
            models[reference] = model
        query_path, query_column = files[query]
        out = os.path.join(workdir, f"{reference}__{query}.h5ad".replace(" ", "_"))
        result, seconds = measure.run_timed([binary, "annotate", "-i", query_path, "-m", models[reference], "-o", out], f"annotate {query}")
        warned = "resemble none of the reference" in result.stderr
        obs = anndata.read_h5ad(out).obs
        unlike = obs["celltyper_unlike_reference"].astype(bool).values if "celltyper_unlike_reference" in obs else np.zeros(len(obs), bool)
        similarity = obs["celltyper_similarity"].values.astype(float) if "celltyper_similarity" in obs else np.full(len(obs), np.nan)
        low_score = obs["celltyper_score"].values < 0.5
        truth = obs[query_column].astype(str).values
        row = {"reference": reference, "query": query, "kind": kind, "cells": int(len(obs)),
               "flagged": float(unlike.mean()), "low_score": float(low_score.mean()), "warned": bool(warned),
               "median_similarity": float(np.nanmedian(similarity)), "seconds": round(seconds, 2)}
        # The same cells with --unassign-unlike: the flagged ones Unassigned (SingleR's pruned
        # labels). Where the reference and the query share label names, how many right labels it
        # costs and how accurate the labels left are.
        pruned_out = out.replace(".h5ad", "__unassign.h5ad")
        measure.run_timed([binary, "annotate", "-i", query_path, "-m", models[reference], "-o", pruned_out, "--unassign-unlike"],
                          f"annotate {query} --unassign-unlike")
        pruned = anndata.read_h5ad(pruned_out).obs["celltyper_label"].astype(str).values
        labels = obs["celltyper_label"].astype(str).values
        unassigned = pruned == "Unassigned"
        row["unassigned"] = float(unassigned.mean())
        row["unassigned_default"] = float((labels == "Unassigned").mean())
        row["unassigned_is_flagged"] = bool(np.array_equal(unassigned & (labels != "Unassigned"), unlike & (labels != "Unassigned")))
        # evaluate's "types the reference lacks" on the same cells (truth labels of no class of
        # the model nor a CL term above or below one): how many of their cells, and of the
        # others, --unassign-unlike left Unassigned.
        # (the datasets' label map names the truth labels' CL terms; pbmc68k's rows for its labels)
        label_map = ["--label-map", os.path.join(SHARED, "label_map_to_cell_ontology.tsv")]
        if query == "pbmc68k":
            label_map += ["--label-dataset", "pbmc68k_reduced"]
        evaluated, _ = measure.run_timed([binary, "evaluate", "-i", pruned_out, "--truth", f"obs:{query_column}", "--json", "-", *label_map],
                                         f"evaluate {query} --unassign-unlike")
        unseen_types = json.loads(evaluated.stdout).get("unseen_types")
        if unseen_types:
            row["unseen_types"] = {key: unseen_types[key] for key in ("n_cells", "n_unassigned", "n_other_cells", "n_other_unassigned",
                                                                      "unassigned_share", "other_unassigned_share", "precision", "f1")}
            row["unseen_labels"] = [label["label"] for label in unseen_types["labels"]]
        reference_labels = set(anndata.read_h5ad(files[reference][0], backed="r").obs[files[reference][1]].astype(str))
        if kind == "quiet" and set(truth) <= reference_labels:
            right = labels == truth
            kept = ~unassigned
            row.update({"accuracy": float(right.mean()), "accuracy_kept": float(right[kept].mean()) if kept.any() else float("nan"),
                        "right_lost": float((right & unassigned).mean()), "wrong_removed": float((~right & unassigned).sum() / max((~right).sum(), 1)),
                        "accuracy_min_score": float(right[~low_score].mean()) if (~low_score).any() else float("nan"),
                        "right_lost_min_score": float((right & low_score).mean())})
        if kind == "held out":
            novel = np.isin(truth, novel_labels)
            row.update({"unassigned_novel": float(unassigned[novel].mean()), "unassigned_known": float(unassigned[~novel].mean()),
                        "labels_new_cells_kept": int((~unassigned[novel]).sum())})
            row.update({"novel_cells": int(novel.sum()), "flagged_novel": float(unlike[novel].mean()), "flagged_known": float(unlike[~novel].mean()),
                        "low_score_novel": float(low_score[novel].mean()), "low_score_known": float(low_score[~novel].mean()),
                        "auroc_similarity": auroc(-np.nan_to_num(similarity[novel], nan=1), -np.nan_to_num(similarity[~novel], nan=1)),
                        "auroc_score": auroc(-obs["celltyper_score"].values[novel], -obs["celltyper_score"].values[~novel])})
        log(f"{reference} -> {query} ({kind}): flagged {row['flagged']:.3f}, low score {row['low_score']:.3f}, warned {warned}"
            + (f", novel {row['flagged_novel']:.3f} / known {row['flagged_known']:.3f}, AUROC {row['auroc_similarity']:.3f} (score {row['auroc_score']:.3f})"
               if kind == "held out" else ""))
        rows.append(row)
    elapsed = time.time() - started
    with open(args.out + ".json", "w") as handle:
        json.dump({"commit": measure.git_commit(ROOT), "seconds": elapsed, "rows": rows}, handle, indent=1)
    lines = ["# Query cells unlike every reference type (bench/novelty)", "",
             f"Command: `/usr/bin/python3 bench/novelty/run.py`; celltyper {measure.git_commit(ROOT)}; {elapsed:.0f} s on {os.cpu_count()} cores. "
             "Default `train` and `annotate` throughout. flagged = share of the query's cells with obs `celltyper_unlike_reference` "
             "(cells too shallow to judge count as not flagged); low score = share with `celltyper_score` < 0.5 (the classifier's "
             "own doubt, for comparison); warned = annotate printed a warning (flagged >= 20% of the cells it could judge, or >= 25% "
             "of the judged cells of a label given to 20 or more, or 20 or more of a label's judged cells, >= 10% of them and >= 4 times "
             "the other labels' share).", "",
             "| reference | query | expected | cells | flagged | low score | warned | median similarity |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["kind"] == "held out":
            continue
        lines.append(f"| {row['reference']} | {row['query']} | {'quiet' if row['kind'] == 'quiet' else 'fire'} | {row['cells']} | "
                     f"{row['flagged']:.3f} | {row['low_score']:.3f} | {'yes' if row['warned'] else 'no'} | {row['median_similarity']:.3f} |")
    lines += ["", "One type left out of the reference: its cells in the query are new to the model.", "",
              "| reference | query | new cells | flagged: new / known | low score: new / known | AUROC similarity / score | warned |",
              "|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["kind"] != "held out":
            continue
        lines.append(f"| {row['reference']} | {row['query']} | {row['novel_cells']} | {row['flagged_novel']:.3f} / {row['flagged_known']:.3f} | "
                     f"{row['low_score_novel']:.3f} / {row['low_score_known']:.3f} | {row['auroc_similarity']:.3f} / {row['auroc_score']:.3f} | "
                     f"{'yes' if row['warned'] else 'no'} |")
    lines += ["", "`annotate --unassign-unlike` (not a default): the flagged cells are Unassigned, as SingleR's pruned labels. "
              "Unassigned = share of the query's cells Unassigned by default / with it (the cells it adds are the flagged "
              f"ones on every row: {'yes' if all(row['unassigned_is_flagged'] for row in rows) else 'NO'}; by default a cell is Unassigned "
              "only when it has no count in the model's genes, or its sample of a padded query too few genes; a cell too shallow to "
              "judge is never flagged, so keeps its label). Where the query's labels are the "
              "reference's own names: exact accuracy of the default labels, of those left labelled, the share of all cells whose right "
              "label it removes, and the share of the wrong labels it removes; beside it, CellTypist's habit `--min-score 0.5` "
              "(accuracy of the labels left, right labels removed).", "",
              "| reference | query | Unassigned | accuracy: default / labels left | right labels removed | wrong labels removed | "
              "--min-score 0.5: labels left / right removed |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "accuracy" in row:
            lines.append(f"| {row['reference']} | {row['query']} | {row['unassigned_default']:.3f} / {row['unassigned']:.3f} | {row['accuracy']:.3f} / {row['accuracy_kept']:.3f} | "
                         f"{row['right_lost']:.3f} | {row['wrong_removed']:.3f} | {row['accuracy_min_score']:.3f} / {row['right_lost_min_score']:.3f} |")
        elif row["kind"] == "quiet":  # (labels in other words than the reference's: Unassigned only)
            lines.append(f"| {row['reference']} | {row['query']} | {row['unassigned_default']:.3f} / {row['unassigned']:.3f} | | | | |")
        elif row["kind"] == "held out":
            lines.append(f"| {row['reference']} | {row['query']} | {row['unassigned_default']:.3f} / {row['unassigned']:.3f} (cells of the type "
                         f"left out {row['unassigned_novel']:.3f}, the others {row['unassigned_known']:.3f}) | | | | |")
        elif row["kind"] == "fire":
            lines.append(f"| {row['reference']} | {row['query']} | {row['unassigned_default']:.3f} / {row['unassigned']:.3f} (no cell of a type "
                         "the reference has) | | | | |")
    lines += ["", "`celltyper evaluate --label-map ../shared/data/label_map_to_cell_ontology.tsv` of the `--unassign-unlike` labels "
              "against the query's own labels: its section \"types the "
              "reference lacks\" takes the truth labels that are no class of the model nor a Cell Ontology term above or below one "
              "(labels without a CL id that name no class count as such) and gives the share of their cells left Unassigned, of the "
              "other cells, the share of the Unassigned cells that are of those types (precision) and F1.", "",
              "| reference | query | truth labels the model lacks | their cells Unassigned | other cells Unassigned | precision | F1 |",
              "|---|---|---|---|---|---|---|"]
    share = lambda value: "n/a" if value is None else f"{value:.3f}"
    for row in rows:
        unseen = row.get("unseen_types")
        if not unseen:
            continue
        named = ", ".join(row["unseen_labels"][:4]) + (", ..." if len(row["unseen_labels"]) > 4 else "")
        lines.append(f"| {row['reference']} | {row['query']} | {len(row['unseen_labels'])} ({unseen['n_cells']} cells{': ' + named if named else ''}) | "
                     f"{unseen['n_unassigned']} ({share(unseen['unassigned_share'])}) | {unseen['n_other_unassigned']} of {unseen['n_other_cells']} "
                     f"({share(unseen['other_unassigned_share'])}) | {share(unseen['precision'])} | {share(unseen['f1'])} |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
