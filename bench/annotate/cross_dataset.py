#!/usr/bin/python3
"""Cross-dataset accuracy of `celltyper annotate` (issue: train, predict, annotate).

Every classifier x feature route is trained on pbmc3k (labels mapped to the Cell Ontology through
label_map_to_cell_ontology.tsv), then annotates two other real datasets, end to end through the
CLI (train -> annotate -> evaluate), and each output is checked to open in anndata with the new
columns:
  * pbmc68k_reduced, counts layer (`--layer counts`), truth `bulk_labels`;
  * the savercat 3-technology PBMC set, truth `celltype` (B cells / Monocytes / T/NK cells).
Predictions are CL terms (`obs:celltyper_ontology_id`); truth labels are mapped through the same
table; flat metrics compare CL ids exactly, ontology-aware ones (corrected accuracy / macro-F1:
a prediction at or below the true term is correct; hierarchical F) credit the finer terms a
pbmc3k model predicts for savercat's coarse labels (B cells / Monocytes / T/NK cells). An ensemble (genept + expression models averaged) per
classifier is included, and GenePT-w models trained on the query's genes only (`train --restrict-genes QUERY`, "genept restricted"),
alone and averaged with the expression model ("ensemble restricted").

    /usr/bin/python3 bench/annotate/cross_dataset.py [--build build] [--classifiers logreg,mlp,xgboost,knn]

Writes bench/results/cross_dataset.json and bench/results/cross_dataset.md.
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402
SHARED = os.path.join(ROOT, "..", "shared", "data")
LABEL_MAP = os.path.join(SHARED, "label_map_to_cell_ontology.tsv")
ONTOLOGY = measure.default_ontology(SHARED)  # what the tool uses by default
REFERENCE = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
QUERIES = [
    dict(name="pbmc68k_reduced", path=os.path.join(SHARED, "pbmc68k_reduced", "pbmc68k_reduced_with_counts.h5ad"), layer="counts",
         truth="bulk_labels", dataset="pbmc68k_reduced"),
    dict(name="savercat", path=os.path.join(SHARED, "savercat-pbmc-3tech", "pbmc_prep_3tech.h5ad"), layer="X", truth="celltype",
         dataset="savercat-pbmc-3tech"),
]

CHECK_ANNDATA = r"""
import sys, anndata
a = anndata.read_h5ad(sys.argv[1])
missing = [c for c in ("celltyper_label", "celltyper_score", "celltyper_ontology_id") if c not in a.obs]
assert not missing, missing
print(a.n_obs)
"""


def run(command):
    return measure.run_timed(command, "bench/annotate/cross_dataset")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--classifiers", default="logreg,mlp,xgboost,knn")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "cross_dataset"))
    parser.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    args = parser.parse_args()
    if args.render:
        with open(args.out + ".json") as f:
            render(json.load(f)["rows"], args.out)
        return
    for needed in [REFERENCE, LABEL_MAP, ONTOLOGY] + [q["path"] for q in QUERIES]:
        if not os.path.exists(needed):
            sys.exit(f"bench/annotate/cross_dataset: {needed} is missing: this benchmark needs ../shared/data")
    celltyper = os.path.join(args.build, "celltyper")
    work = tempfile.mkdtemp(prefix="celltyper-cross-")
    rows = []
    for classifier in args.classifiers.split(","):
        models = {}
        for features in ("genept", "expression"):
            model = os.path.join(work, f"{classifier}_{features}.h5")
            _, seconds = run([celltyper, "--quiet", "train", "--reference", REFERENCE, "--label", "obs:celltype", "--classifier", classifier,
                              "--features", features, "--label-map", LABEL_MAP, "--label-dataset", "pbmc3k-seurat-labels",
                              "--threads", str(args.threads), "--out", model])
            models[features] = (model, seconds)
        configurations = [(f, [m], s, None) for f, (m, s) in models.items()]
        configurations.append(("ensemble", [m for m, _ in models.values()], sum(s for _, s in models.values()), None))
        # GenePT-w restricted to the query's genes (`train --restrict-genes QUERY`): one model per
        # query, alone and averaged with the (unrestricted) expression model.
        for query in QUERIES:
            model = os.path.join(work, f"{classifier}_genept_restricted_{query['name']}.h5")
            _, seconds = run([celltyper, "--quiet", "train", "--reference", REFERENCE, "--label", "obs:celltype", "--classifier", classifier,
                              "--features", "genept", "--restrict-genes", query["path"], "--label-map", LABEL_MAP,
                              "--label-dataset", "pbmc3k-seurat-labels", "--threads", str(args.threads), "--out", model])
            configurations.append(("genept restricted", [model], seconds, query["name"]))
            configurations.append(("ensemble restricted", [model, models["expression"][0]], seconds + models["expression"][1], query["name"]))
        for features, paths, train_seconds, only_query in configurations:
            for query in QUERIES:
                if only_query is not None and query["name"] != only_query:
                    continue
                out = os.path.join(work, f"{classifier}_{features.replace(' ', '_')}_{query['name']}.h5ad")
                command = [celltyper, "--quiet", "annotate", "--input", query["path"], "--layer", query["layer"], "--out", out,
                           "--threads", str(args.threads)]
                for path in paths:
                    command += ["--model", path]
                _, annotate_seconds = run(command)
                checked, _ = run(["/usr/bin/python3", "-c", CHECK_ANNDATA, out])
                metrics_path = out + ".json"
                run([celltyper, "--quiet", "evaluate", "--input", out, "--pred", "obs:celltyper_ontology_id", "--truth", f"obs:{query['truth']}",
                     "--label-map", LABEL_MAP, "--label-dataset", query["dataset"], "--ontology", ONTOLOGY, "--json", metrics_path])
                with open(metrics_path) as f:
                    evaluation = json.load(f)
                metrics = evaluation["overall"]
                ontology = metrics.get("ontology") or {}
                row = dict(classifier=classifier, features=features, query=query["name"], n_cells=int(checked.stdout.strip()),
                           accuracy=metrics["accuracy"], macro_f1=metrics["macro"]["f1"], weighted_f1=metrics["weighted"]["f1"],
                           corrected_accuracy=ontology.get("corrected_accuracy"), corrected_macro_f1=ontology.get("corrected_macro_f1"),
                           hierarchical_f=ontology.get("hierarchical_f1"),
                           train_seconds=train_seconds, annotate_seconds=annotate_seconds,
                           no_prediction=evaluation.get("n_missing_prediction", 0))
                rows.append(row)
                print(json.dumps(row), flush=True)
    with open(args.out + ".json", "w") as f:
        json.dump(dict(machine=dict(cpus=os.cpu_count(), load=os.getloadavg()), commit=measure.git_commit(ROOT), rows=rows), f, indent=1)
    render(rows, args.out, measure.git_commit(ROOT))


def render(rows, out, commit):
    lines = ["# Train on pbmc3k, annotate other datasets (CLI end to end)", "",
             f"celltyper {commit}, {os.cpu_count()} cores. Truth and predictions as Cell Ontology ids (label_map_to_cell_ontology.tsv); "
             "every output opened in anndata with the celltyper_label / celltyper_score / celltyper_ontology_id columns. annotate runs "
             "its defaults (`--min-score 0`: every cell gets its best class); 'Unassigned' counts cells without a CL id, errors in "
             "every metric. Reproduce: `/usr/bin/python3 bench/annotate/cross_dataset.py`.", ""]
    for query in QUERIES:
        lines += [f"## {query['name']} (truth obs:{query['truth']})", "",
                  "| classifier | features | accuracy | macro-F1 | weighted F1 | corrected accuracy | corrected macro-F1 | hierarchical F | Unassigned | train s | annotate s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted((r for r in rows if r["query"] == query["name"]), key=lambda r: -r["macro_f1"]):
            fmt = lambda x: "" if x is None else f"{x:.3f}"
            lines.append(f"| {r['classifier']} | {r['features']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['weighted_f1']:.3f} | "
                         f"{fmt(r.get('corrected_accuracy'))} | {fmt(r['corrected_macro_f1'])} | {fmt(r['hierarchical_f'])} | "
                         f"{r.get('no_prediction', 0)} of {r['n_cells']} | {r['train_seconds']:.1f} | {r['annotate_seconds']:.2f} |")
        lines.append("")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
