#!/usr/bin/python3
"""Labels with default flags on files laid out as CELLxGENE publishes them.

CELLxGENE h5ad files keep log-normalised values in X (log1p of counts per 10,000), the counts in
raw/X, Ensembl ids as the var index with the symbols in var['feature_name'], and CL names in obs
cell_type with their ids in cell_type_ontology_term_id. This bench writes the real pbmc3k,
savercat and pbmc68k_reduced cells in that layout (the counts are the files' own; the label map
gives the CL names and ids), trains on pbmc3k and annotates the two others, each way:

  * default      `train -r ref -l obs:cell_type`, `annotate` with no --layer (auto: raw/X here);
  * --layer X    the same reading the log-normalised X: train reads the reference's counts back
                 from it (expm1 of each value over that of the cell's smallest, since session 30;
                 before, the values were normalised again, relog1p-cp10k, without depth
                 augmentation); annotate normalises the query's again (the same features);
  * --layer X --normalize none   X used as it is (what the default did before session 23);
  * plain files  the original files, counts in X (pbmc68k_reduced: --layer counts), labels mapped
                 through the label map: the figure the CELLxGENE layout should reproduce.

Metrics by `celltyper evaluate --json` on CL ids (the installed Cell Ontology): accuracy,
macro-F1, corrected accuracy (a prediction at or below the truth counts; savercat's truth is
coarse), hierarchical F.

    /usr/bin/python3 bench/annotate/cellxgene_layout.py [--build build]

Writes bench/results/cellxgene_layout.{json,md}.
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
SHARED = os.path.join(ROOT, "..", "shared", "data")
LABEL_MAP = os.path.join(SHARED, "label_map_to_cell_ontology.tsv")
GENES = os.path.join(SHARED, "gene-annotations", "human_genes.tsv")
SETS = {  # name: (file, counts matrix, label column, label-map dataset)
    "pbmc3k": ("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "X", "celltype", "pbmc3k-seurat-labels"),
    "savercat": ("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", "X", "celltype", "savercat-pbmc-3tech"),
    "pbmc68k": ("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad", "counts", "bulk_labels", "pbmc68k_reduced"),
}


def log(message):
    print(f"[cellxgene_layout] {message}", file=sys.stderr, flush=True)


def run(command):
    return measure.run_timed(command, "bench/annotate/cellxgene_layout")


def cellxgene_file(name, out_path):
    """The set's cells in the CELLxGENE layout; genes without an Ensembl id in the gene table are
    left out (CELLxGENE indexes genes by Ensembl id)."""
    file, matrix, label, dataset = SETS[name]
    a = anndata.read_h5ad(os.path.join(SHARED, file))
    counts = sp.csr_matrix(a.X if matrix == "X" else a.layers[matrix], dtype=np.float32)
    table = pd.read_csv(GENES, sep="\t", usecols=["symbol", "ensembl_ids"]).dropna()
    ensembl = {s: e.split(",")[0] for s, e in zip(table["symbol"], table["ensembl_ids"]) if e.startswith("ENSG")}
    ids = pd.Series([ensembl.get(g) for g in a.var_names])
    keep = (ids.notna() & ~ids.duplicated(keep="first")).to_numpy()
    counts = counts[:, keep]
    var = pd.DataFrame({"feature_name": pd.Categorical(np.asarray(a.var_names)[keep])}, index=pd.Index(ids[keep].to_numpy(), name=None))
    rows = pd.read_csv(LABEL_MAP, sep="\t")
    rows = rows[rows["dataset"] == dataset].set_index("label")
    labels = a.obs[label].astype(str)
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels.map(rows["cl_label"])),
                        "cell_type_ontology_term_id": pd.Categorical(labels.map(rows["cl_id"]))}, index=a.obs_names)
    library = np.asarray(counts.sum(axis=1)).ravel()
    x = sp.csr_matrix(sp.diags(1e4 / np.maximum(library, 1)) @ counts, dtype=np.float32)
    x.data = np.log1p(x.data)
    out = anndata.AnnData(X=x, obs=obs, var=var)
    out.raw = anndata.AnnData(X=counts, obs=obs, var=var)
    out.write_h5ad(out_path)
    return dict(cells=int(out.n_obs), genes=int(out.n_vars), genes_left_out=int((~keep).sum()))


def metrics(celltyper, path, truth, extra):
    result, _ = run([celltyper, "evaluate", "-i", path, "--truth", truth, "--pred", "obs:celltyper_label", "--json", "-"] + extra)
    doc = json.loads(result.stdout)
    overall = doc["overall"]
    ontology = overall.get("ontology", {})
    return dict(accuracy=overall["accuracy"], macro_f1=overall["macro"]["f1"], corrected_accuracy=ontology.get("corrected_accuracy"),
                hierarchical_f=ontology.get("hierarchical_f1"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "cellxgene_layout"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    started = time.perf_counter()
    work = tempfile.mkdtemp(prefix="celltyper-cxg-")
    files = {name: os.path.join(work, f"{name}.h5ad") for name in SETS}
    shapes = {name: cellxgene_file(name, path) for name, path in files.items()}
    log(f"wrote {', '.join(f'{n} {s}' for n, s in shapes.items())}")
    rows = []
    for condition, layer in (("default (no --layer)", []), ("--layer X (log-normalised X: counts read back)", ["--layer", "X"]),
                             ("--layer X --normalize none (X as it is: session 22's default)", ["--layer", "X", "--normalize", "none"])):
        model = os.path.join(work, f"model_{len(rows)}.h5")
        trained, train_s = run([celltyper, "train", "-r", files["pbmc3k"], "-l", "obs:cell_type", "-o", model] + layer)
        for query in ("savercat", "pbmc68k"):
            out = os.path.join(work, f"{query}_{len(rows)}.h5ad")
            annotated, annotate_s = run([celltyper, "annotate", "-m", model, "-i", files[query], "-o", out] + layer)
            said = [line.replace(work + os.sep, "") for line in (trained.stderr + annotated.stderr).splitlines() if "read (" in line]
            row = dict(condition=condition, query=query, train_s=train_s, annotate_s=annotate_s, read_note=said)
            row.update(metrics(celltyper, out, "obs:cell_type", []))
            rows.append(row)
            log(f"{condition} -> {query}: {row}")
    # The original files, counts in X (or the counts layer), labels through the label map.
    file, _, label, dataset = SETS["pbmc3k"]
    model = os.path.join(work, "plain.h5")
    _, train_s = run([celltyper, "train", "-r", os.path.join(SHARED, file), "-l", f"obs:{label}", "--label-map", LABEL_MAP,
                      "--label-dataset", dataset, "-o", model])
    for query in ("savercat", "pbmc68k"):
        qfile, matrix, qlabel, qdataset = SETS[query]
        out = os.path.join(work, f"{query}_plain.h5ad")
        _, annotate_s = run([celltyper, "annotate", "-m", model, "-i", os.path.join(SHARED, qfile), "-o", out] +
                            (["--layer", matrix] if matrix != "X" else []))
        row = dict(condition="plain files (counts in X / --layer counts)", query=query, train_s=train_s, annotate_s=annotate_s, read_note=[])
        row.update(metrics(celltyper, out, f"obs:{qlabel}", ["--label-map", LABEL_MAP, "--label-dataset", qdataset]))
        rows.append(row)
        log(f"plain -> {query}: {row}")
    commit = measure.git_commit(ROOT)
    report = dict(command="/usr/bin/python3 bench/annotate/cellxgene_layout.py", commit=commit, shapes=shapes, rows=rows,
                  wall_seconds=time.perf_counter() - started, machine=f"{os.cpu_count()} cores")
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    lines = ["# Default labels on CELLxGENE-layout files (bench/annotate/cellxgene_layout.py)", "",
             f"Command: `{report['command']}`; celltyper {commit}; {report['wall_seconds']:.0f} s on {report['machine']}.", "",
             "pbmc3k, savercat and pbmc68k_reduced written as CELLxGENE publishes files (X = log1p CP10k, raw/X = the counts, "
             "Ensembl var index, obs cell_type + cell_type_ontology_term_id); model trained on pbmc3k with default flags. "
             "Metrics on CL ids (savercat's truth is coarse: corrected accuracy counts a finer prediction as right).", "",
             "| condition | query | accuracy | macro-F1 | corrected accuracy | hF | train s | annotate s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['condition']} | {r['query']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['corrected_accuracy']:.3f} | "
                     f"{r['hierarchical_f']:.3f} | {r['train_s']:.1f} | {r['annotate_s']:.1f} |")
    notes = sorted({n for r in rows for n in r["read_note"]})
    if notes:
        lines += ["", "What the default said:", ""] + [f"    {n}" for n in notes]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
