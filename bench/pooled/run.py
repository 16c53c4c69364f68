#!/usr/bin/python3
"""Pooled references labelled at different Cell Ontology depths (issue: a generic cell typer).

Leave-one-dataset-out over the PBMC sets of ../shared/data: pbmc3k (fine Seurat labels),
pbmc68k_reduced counts (fine bulk-correlation labels) and savercat (coarse: B cells, Monocytes,
T/NK cells -> "lymphocyte"). Each held-out set is annotated by models trained on the others:

  (a) mixed     `celltyper train --harmonize-labels` (labels -> CL terms through the label map;
                a coarse term trains on the summed probability of the classes below it)
      (and the same model's `annotate --hierarchical` labels: the most specific term whose summed
      probability reaches 0.5)
  (b) flat      the same with `--flat-labels` (every pooled CL term is a class of its own)
  (c) alone     each training reference on its own (its CL-harmonised labels, flat)
  (d) peers     scikit-learn logistic regression and XGBoost (log1p-CP10k, the CellTypist
                features), SingleR and Seurat, trained on the same pooled cells with the same
                (flat) CL labels, on the genes the training references and the query share.

celltyper runs its defaults otherwise (`train` then `annotate`, expression route, logreg). Every
prediction is scored by `celltyper evaluate` on CL terms: corrected macro-F1 (a prediction at or
below the truth counts as right), hierarchical F, mean LCA distance, exact macro-F1.

    /usr/bin/python3 bench/pooled/run.py [--build build] [--extra "train flags"] [--no-peers] [--out bench/results/pooled]

Each per-set goal ((a) above (b) and every (c) on corrected macro-F1 and hF) is reported with a
paired bootstrap over the held-out cells (`--resamples`, default 1000): the observed difference,
its 95% interval and the share of resamples where (a) is higher, so a difference of a few cells
reads as one; and across training seeds (`--seeds`, default 5: (a), (b) and (c) trained again
with `train --seed 1..4`), so a difference the training run decides reads as one too.

Writes bench/results/pooled.json and bench/results/pooled.md.
"""
import argparse
import importlib.util
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402
# bench/peers/run.py: the peer methods, label harmonisation and the metric summary.
_spec = importlib.util.spec_from_file_location("peers_run", os.path.join(ROOT, "bench", "peers", "run.py"))
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)

SHARED = os.path.join(ROOT, "..", "shared", "data")
LABEL_MAP = os.path.join(SHARED, "label_map_to_cell_ontology.tsv")
ONTOLOGY = measure.default_ontology(SHARED)  # what the tool uses by default
DATASETS = {  # name: (file, label column, layer with counts or None for X, label-map dataset)
    "pbmc3k": ("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "celltype", None, "pbmc3k-seurat-labels"),
    "pbmc68k": ("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad", "bulk_labels", "counts", "pbmc68k_reduced"),
    "savercat": ("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", "celltype", None, "savercat-pbmc-3tech"),
}
PEERS = ["sklearn-logreg", "xgboost-expr", "SingleR", "Seurat"]


def log(message):
    print(f"[pooled] {message}", file=sys.stderr, flush=True)


def prepare(workdir):
    """One counts .h5ad per dataset with obs `label` (as published) and `truth` (its CL term name)."""
    paths = {}
    for name, (file, column, layer, dataset) in DATASETS.items():
        full = os.path.join(SHARED, file)
        if not os.path.exists(full):
            sys.exit(f"bench/pooled: {full} is missing: this benchmark needs ../shared/data")
        a = anndata.read_h5ad(full)
        X = a.layers[layer] if layer else a.X
        obs = a.obs[[column]].rename(columns={column: "label"}).astype(str)
        obs["truth"] = peers.harmonized(obs["label"], dataset)
        obs["dataset"] = name
        out = anndata.AnnData(X=sp.csr_matrix(X, dtype=np.float32), obs=obs, var=a.var[[]])
        out.var_names = [str(g) for g in a.var_names]
        out.var_names_make_unique()
        paths[name] = os.path.join(workdir, f"{name}.h5ad")
        out.write_h5ad(paths[name])
    return paths


def run(command):
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr.strip()}")
    return time.perf_counter() - started


def evaluate(celltyper, path, pred_column, workdir, tag):
    json_path = os.path.join(workdir, f"eval_{tag}.json")
    run([celltyper, "evaluate", "--input", path, "--truth", "obs:truth", "--pred", pred_column, "--ontology", ONTOLOGY,
         "--compare", "ontology", "--probabilities", "none", "--embedding", "none", "--json", json_path])
    with open(json_path) as f:
        return peers.summarize(json.load(f)["overall"])


def celltyper_condition(celltyper, references, query, flags, workdir, tag, threads, hierarchical=False):
    """Train then annotate with defaults; with `hierarchical`, also the `annotate --hierarchical`
    labels of the same model (returns both rows)."""
    model = os.path.join(workdir, f"{tag}.model")
    out = os.path.join(workdir, f"{tag}.h5ad")
    train = [celltyper, "train", "-r", ",".join(references), "-l", "obs:label", "--label-map", LABEL_MAP, "--harmonize-labels",
             "--ontology", ONTOLOGY, "--threads", str(threads), "-q", "-o", model] + flags
    seconds = run(train)
    seconds += run([celltyper, "annotate", "-m", model, "-i", query, "-o", out, "--threads", str(threads), "-q"])
    row = evaluate(celltyper, out, "obs:celltyper_label", workdir, tag)
    row["seconds"] = seconds
    row["prediction"] = (out, "celltyper_label")
    if not hierarchical:
        return row
    out_h = os.path.join(workdir, f"{tag}_hierarchical.h5ad")
    seconds_h = run([celltyper, "annotate", "-m", model, "-i", query, "-o", out_h, "--hierarchical", "--ontology", ONTOLOGY,
                     "--threads", str(threads), "-q"])
    row_h = evaluate(celltyper, out_h, "obs:celltyper_label", workdir, tag + "_hierarchical")
    row_h["seconds"] = seconds_h
    return row, row_h


def peer_conditions(paths, training, held_out, methods, threads, workdir):
    """Peers on the pooled training cells (flat CL labels), genes shared by every file involved."""
    files = [anndata.read_h5ad(paths[name]) for name in training + [held_out]]
    genes = sorted(set.intersection(*(set(a.var_names) for a in files)))
    Xs = [peers.expression(a[:, genes].X, False) for a in files]
    Xtr = sp.vstack(Xs[:-1]).tocsr()
    ytr = [label for a in files[:-1] for label in a.obs["truth"].astype(str)]
    Xte = Xs[-1]
    query = files[-1]
    rows = {}
    for method in methods:
        log(f"  {method}")
        try:
            started = time.perf_counter()
            if method == "sklearn-logreg":
                pred, _, _ = peers.peer_logreg(Xtr, ytr, Xte, threads)
            elif method == "xgboost-expr":
                pred, _, _ = peers.peer_xgboost(Xtr, ytr, Xte, threads)
            elif method == "SingleR":
                pred, _, _ = peers.peer_r(peers.R_SINGLER, Xtr, ytr, Xte, genes, workdir)
            else:
                pred, _, _ = peers.peer_r(peers.R_SEURAT, Xtr, ytr, Xte, genes, workdir)
            seconds = time.perf_counter() - started
            sub = anndata.AnnData(X=sp.csr_matrix((query.n_obs, 1), dtype=np.float32),
                                  obs=query.obs[["truth"]].assign(pred=np.asarray(pred, dtype=str)).astype(str))
            path = os.path.join(workdir, f"pred_{held_out}_{method}.h5ad")
            sub.write_h5ad(path)
            rows[method] = evaluate(CELLTYPER, path, "obs:pred", workdir, f"{held_out}_{method}")
            rows[method]["seconds"] = seconds
        except Exception as error:  # a failing peer is a result
            rows[method] = dict(error=f"{type(error).__name__}: {error}")
            log(f"  {method} failed: {rows[method]['error']}")
    return rows, len(genes)


GOAL_METRICS = [("corrected_macro_f1", "corrected macro-F1"), ("hierarchical_f", "hF")]


def seed_runs(celltyper, references, paths, training, held_out, extra, workdir, threads, seeds, first):
    """The per-set goals across training seeds: (a), (b) and each (c) trained again with
    `train --seed S` for S = 1 .. seeds-1 (`first` holds seed 0's rows, the tables' runs). The seed
    draws the validation split and the depth-augmented copies, so this measures how much of a
    per-set difference is the training run's. Returns {other: {metric: dict(differences, mean,
    above)}} with one difference of (a) minus `other` per seed."""
    others = [c for c in first if c == "(b) flat" or c.startswith("(c)")]
    scores = {c: [first[c]] for c in ["(a) mixed"] + others}
    for seed in range(1, seeds):
        flags = extra + ["--seed", str(seed)]
        scores["(a) mixed"].append(celltyper_condition(celltyper, references, paths[held_out], flags, workdir,
                                                       f"{held_out}_mixed_seed{seed}", threads))
        scores["(b) flat"].append(celltyper_condition(celltyper, references, paths[held_out], flags + ["--flat-labels"], workdir,
                                                      f"{held_out}_flat_seed{seed}", threads))
        for name in training:
            scores[f"(c) {name} alone"].append(celltyper_condition(celltyper, [paths[name]], paths[held_out], flags + ["--flat-labels"],
                                                                   workdir, f"{held_out}_{name}_alone_seed{seed}", threads))
    result = {}
    for other in others:
        result[other] = {}
        for key, _ in GOAL_METRICS:
            diff = [a[key] - o[key] for a, o in zip(scores["(a) mixed"], scores[other])]
            result[other][key] = dict(differences=diff, mean=float(np.mean(diff)), above=int(np.sum(np.array(diff) > 0)))
    return result


def paired_bootstrap(celltyper, results, workdir, tag, resamples, seed=0):
    """The per-set goals with their uncertainty: (a) minus each of (b) and (c) on the same cells,
    over `resamples` bootstrap resamples of the held-out cells (the same resample for every
    condition: a paired bootstrap). One `celltyper evaluate --group` call per condition scores
    every resample. Returns {other: {metric: dict(observed, low, high, share_above)}}."""
    others = [c for c in results if c == "(b) flat" or c.startswith("(c)")]
    conditions = ["(a) mixed"] + others
    if any("prediction" not in results[c] for c in conditions):
        return {}
    obs = {}
    for condition in conditions:
        path, column = results[condition]["prediction"]
        frame = anndata.read_h5ad(path, backed="r").obs
        obs.setdefault("truth", frame["truth"].astype(str).to_numpy())
        obs[condition] = frame[column].astype(str).to_numpy()
    n = len(obs["truth"])
    rng = np.random.default_rng(seed)
    rows = np.concatenate([np.arange(n)] + [rng.integers(0, n, n) for _ in range(resamples)])
    group = np.repeat(np.arange(resamples + 1), n)
    columns = {"truth": obs["truth"][rows], "resample": np.char.add("r", group.astype(str))}
    for i, condition in enumerate(conditions):
        columns[f"c{i}"] = obs[condition][rows]
    frame = anndata.AnnData(X=sp.csr_matrix((len(rows), 1), dtype=np.float32), obs=pd.DataFrame(columns))
    frame.obs_names = [str(i) for i in range(len(rows))]
    path = os.path.join(workdir, f"bootstrap_{tag}.h5ad")
    frame.write_h5ad(path)
    scores = {}
    for i, condition in enumerate(conditions):
        json_path = os.path.join(workdir, f"bootstrap_{tag}_{i}.json")
        run([celltyper, "evaluate", "--input", path, "--truth", "obs:truth", "--pred", f"obs:c{i}", "--group", "obs:resample",
             "--ontology", ONTOLOGY, "--compare", "ontology", "--probabilities", "none", "--embedding", "none", "--json", json_path])
        with open(json_path) as f:
            groups = json.load(f)["groups"]
        scores[condition] = {g["group"]: peers.summarize(g["metrics"]) for g in groups}
    names = [f"r{b}" for b in range(1, resamples + 1)]
    result = {}
    for other in others:
        result[other] = {}
        for key, _ in GOAL_METRICS:
            diff = np.array([scores["(a) mixed"][name][key] - scores[other][name][key] for name in names])
            result[other][key] = dict(observed=scores["(a) mixed"]["r0"][key] - scores[other]["r0"][key],
                                      low=float(np.quantile(diff, 0.025)), high=float(np.quantile(diff, 0.975)),
                                      share_above=float(np.mean(diff > 0)))
    return result


METRICS = [("corrected_macro_f1", "corrected macro-F1"), ("hierarchical_f", "hF"), ("mean_lca_distance", "LCA dist."),
           ("macro_f1", "exact macro-F1"), ("accuracy", "exact acc.")]


def markdown(report):
    lines = ["# Pooled references at mixed Cell Ontology depths (bench/pooled)", "",
             f"Command: `{report['command']}`; celltyper {report['commit']}; {report['seconds']:.0f} s on {report['machine']}.", "",
             "Leave one PBMC dataset out; the model is trained on the other two. Metrics on CL terms (`celltyper evaluate "
             "--compare ontology`): corrected macro-F1 counts a prediction at or below the truth as right; hF = hierarchical F; "
             "LCA dist. = mean upward distance to the lowest common ancestor (lower is better).", ""]
    conditions = report["conditions"]
    for held_out, rows in report["held_out"].items():
        lines += [f"## held out: {held_out} (trained on {', '.join(rows['training'])}; peers on {rows['n_shared_genes']} shared genes)", "",
                  "| condition | " + " | ".join(label for _, label in METRICS) + " | seconds |",
                  "|---|" + "---|" * (len(METRICS) + 1)]
        for condition in conditions:
            row = rows["results"].get(condition)
            if row is None:
                continue
            if "error" in row:
                lines.append(f"| {condition} | error: {row['error'][:120]} |")
                continue
            cells = [f"{row[key]:.3f}" if key in row else "-" for key, _ in METRICS]
            lines.append(f"| {condition} | " + " | ".join(cells) + f" | {row.get('seconds', 0):.1f} |")
        lines.append("")
        bootstrap = rows.get("bootstrap")
        if bootstrap:
            lines += [f"Per-set goals, (a) mixed minus each condition on the same cells ({report['resamples']} paired bootstrap resamples "
                      "of the held-out cells: observed difference, 95% interval, share of resamples where (a) is higher):", "",
                      "| (a) minus | " + " | ".join(label for _, label in GOAL_METRICS) + " |", "|---|" + "---|" * len(GOAL_METRICS)]
            for other, metrics in bootstrap.items():
                cells = [f"{m['observed']:+.4f} [{m['low']:+.4f}, {m['high']:+.4f}] {m['share_above']:.2f}" for m in
                         (metrics[key] for key, _ in GOAL_METRICS)]
                lines.append(f"| {other} | " + " | ".join(cells) + " |")
            lines.append("")
        by_seed = rows.get("seeds")
        if by_seed:
            lines += [f"The same per-set goals across {report['seeds']} training seeds (`train --seed 0..{report['seeds'] - 1}`; seed 0 is "
                      "the table above): (a) mixed minus each condition, mean difference, range and seeds where (a) is higher:", "",
                      "| (a) minus | " + " | ".join(label for _, label in GOAL_METRICS) + " |", "|---|" + "---|" * len(GOAL_METRICS)]
            for other, metrics in by_seed.items():
                cells = [f"{m['mean']:+.4f} [{min(m['differences']):+.4f}, {max(m['differences']):+.4f}] {m['above']}/{report['seeds']}"
                         for m in (metrics[key] for key, _ in GOAL_METRICS)]
                lines.append(f"| {other} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ["## means over the held-out sets", "", "| condition | " + " | ".join(label for _, label in METRICS) + " |",
              "|---|" + "---|" * len(METRICS)]
    for condition, row in report["means"].items():
        lines.append(f"| {condition} | " + " | ".join(f"{row[key]:.3f}" if key in row else "-" for key, _ in METRICS) + " |")
    lines.append("")
    return "\n".join(lines)


def main():
    global CELLTYPER, ONTOLOGY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--extra", default="", help="extra flags for every celltyper train (experiments)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--held-out", default=",".join(DATASETS), help="held-out sets, comma-separated")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "pooled"), help="writes OUT.json and OUT.md")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples of each held-out set (0 = none)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="training seeds for the per-set goals: (a), (b) and (c) trained again with train --seed 1..N-1 (1 = seed 0 only)")
    parser.add_argument("--ontology", default=ONTOLOGY, help="the Cell Ontology every train, annotate and evaluate uses")
    args = parser.parse_args()
    CELLTYPER = os.path.join(args.build, "celltyper")
    ONTOLOGY = args.ontology
    if not os.path.exists(CELLTYPER):
        sys.exit(f"bench/pooled: {CELLTYPER} is missing: build first (scripts/setup.sh)")
    started = time.perf_counter()
    workdir = args.workdir or tempfile.mkdtemp(prefix="celltyper-pooled-")
    os.makedirs(workdir, exist_ok=True)
    log(f"work folder {workdir}")
    paths = prepare(workdir)
    extra = args.extra.split()
    methods = [] if args.no_peers else [m for m in PEERS if m not in ("SingleR", "Seurat") or peers.r_package(m)]
    report = dict(command="/usr/bin/python3 bench/pooled/run.py " + " ".join(sys.argv[1:]),
                  commit=measure.git_commit(ROOT),
                  machine=f"{os.cpu_count()} cores", held_out={}, extra=args.extra, resamples=args.resamples, seeds=args.seeds,
                  ontology=os.path.basename(ONTOLOGY))
    conditions = ["(a) mixed", "(a) mixed, annotate --hierarchical", "(b) flat"]
    for held_out in args.held_out.split(","):
        training = [name for name in DATASETS if name != held_out]
        log(f"held out {held_out}: training on {', '.join(training)}")
        results = {}
        references = [paths[name] for name in training]
        results["(a) mixed"], results["(a) mixed, annotate --hierarchical"] = celltyper_condition(
            CELLTYPER, references, paths[held_out], extra, workdir, f"{held_out}_mixed", args.threads, hierarchical=True)
        results["(b) flat"] = celltyper_condition(CELLTYPER, references, paths[held_out], extra + ["--flat-labels"], workdir,
                                                  f"{held_out}_flat", args.threads)
        for name in training:
            condition = f"(c) {name} alone"
            results[condition] = celltyper_condition(CELLTYPER, [paths[name]], paths[held_out], extra + ["--flat-labels"], workdir,
                                                     f"{held_out}_{name}_alone", args.threads)
            if condition not in conditions:
                conditions.append(condition)
        peer_rows, n_shared = peer_conditions(paths, training, held_out, methods, args.threads, workdir) if methods else ({}, 0)
        for method, row in peer_rows.items():
            results[f"(d) {method}"] = row
            if f"(d) {method}" not in conditions:
                conditions.append(f"(d) {method}")
        bootstrap = paired_bootstrap(CELLTYPER, results, workdir, held_out, args.resamples) if args.resamples > 0 else {}
        by_seed = seed_runs(CELLTYPER, references, paths, training, held_out, extra, workdir, args.threads, args.seeds,
                            results) if args.seeds > 1 else {}
        for row in results.values():
            row.pop("prediction", None)
        report["held_out"][held_out] = dict(training=training, n_shared_genes=n_shared, results=results, bootstrap=bootstrap,
                                            seeds=by_seed)
        for condition, row in results.items():
            if "error" not in row:
                log(f"  {condition}: corrected macro-F1 {row.get('corrected_macro_f1', float('nan')):.3f}, "
                    f"hF {row.get('hierarchical_f', float('nan')):.3f}, exact macro-F1 {row['macro_f1']:.3f}")
    report["conditions"] = sorted(conditions, key=lambda c: (c[:3], conditions.index(c)))
    means = {}
    for condition in ["(a) mixed", "(a) mixed, annotate --hierarchical", "(b) flat"] + [c for c in conditions if c.startswith("(d)")]:
        rows = [h["results"][condition] for h in report["held_out"].values() if "error" not in h["results"].get(condition, {"error": 1})]
        if rows and len(rows) == len(report["held_out"]):
            means[condition] = peers.mean_of(rows)
    report["means"] = means
    report["seconds"] = time.perf_counter() - started
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(report))
    print(markdown(report))


CELLTYPER = None

if __name__ == "__main__":
    main()
