#!/usr/bin/python3
"""Peer benchmark: celltyper against the tools users already know, on the same folds.

Folds (real data from ../shared/data):
  * savercat   leave-one-technology-out (10x V2 3', V3 3', VDJ 5'), 3 folds;
  * pancreas   Xin (SMARTer) -> Wang (Fluidigm C1) on the 219 genes Wang measured;
  * pbmc       pbmc3k -> pbmc68k_reduced (counts layer) and the reverse, labels harmonised to the
               Cell Ontology term names through label_map_to_cell_ontology.tsv (for every method);
  * cellbench  CEL-seq2 <-> Drop-seq, cell-line labels (singlets only; no ontology).

celltyper runs `celltyper cv` (every classifier x feature route, their ensemble, and
ontology-aware "+hierarchical" prediction), each fold trained on the genes detected in its held-out
cells (`cv --restrict-genes held-out`, what `train --restrict-genes QUERY.h5ad` does for a user's
query; `--no-restrict` trains on every gene). Peers, in this script, on identical train/test cells:
  * scikit-learn LogisticRegression on log1p-CP10k expression, features standardised with training
    statistics and clipped at 10 (the CellTypist method);
  * XGBoost (python3-xgboost) on the same expression features;
  * SingleR (R, r-bioc-singler) with the training cells as reference;
  * Seurat label transfer (r-cran-seurat) when it runs.
Every method's held-out predictions are scored by the same code (`celltyper evaluate`), so flat
and ontology-aware metrics are computed identically.

    /usr/bin/python3 bench/peers/run.py [--build build] [--classifiers logreg,knn,mlp,xgboost] [--setups ...] [--no-restrict]

Writes bench/results/peers.json and bench/results/peers.md.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import anndata
import numpy as np
import scipy.io
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402
SHARED = os.path.join(ROOT, "..", "shared", "data")
LABEL_MAP = os.path.join(SHARED, "label_map_to_cell_ontology.tsv")
ONTOLOGY = measure.default_ontology(SHARED)  # what the tool uses by default


def data(path):
    full = os.path.join(SHARED, path)
    if not os.path.exists(full):
        sys.exit(f"bench/peers: {full} is missing: this benchmark needs ../shared/data")
    return full


def log(message):
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def harmonized(labels, dataset):
    """Labels replaced by their Cell Ontology term name (rows of `dataset` in the label map);
    labels the map does not know are kept."""
    import csv
    names = {}
    with open(LABEL_MAP) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["dataset"] == dataset:
                names[row["label"]] = row["cl_label"] or row["cl_id"]
    return [names.get(label, label) for label in labels.astype(str)]


# ---- inputs: one h5ad per setup with obs `label`, `group` (and counts or log values in X) ----

def prepare(workdir):
    """Returns setups: name -> dict(path, fold_groups, label_dataset, ontology, is_log)."""
    setups = {}
    # savercat: counts in X.
    a = anndata.read_h5ad(data("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad"))
    a.obs = a.obs.assign(label=a.obs["celltype"].astype(str), group=a.obs["tech"].astype(str))
    path = os.path.join(workdir, "savercat.h5ad")
    a.write_h5ad(path)
    setups["savercat"] = dict(path=path, folds=sorted(a.obs["group"].unique()), ontology=True, is_log=False,
                              description="leave-one-technology-out, 3 folds")
    # pancreas: log values; only the genes Wang measured.
    a = anndata.read_h5ad(data("pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad"))
    a = a[:, a.var["in_wang_subset"].astype(bool).values].copy()
    a.obs = a.obs.assign(label=a.obs["celltype"].astype(str), group=a.obs["study"].astype(str))
    wang = [g for g in a.obs["group"].unique() if g.lower().startswith("wang")]
    path = os.path.join(workdir, "pancreas.h5ad")
    a.write_h5ad(path)
    setups["pancreas"] = dict(path=path, folds=wang, ontology=True, is_log=True,
                              description=f"Xin -> Wang on the {a.n_vars} genes Wang measured")
    # pbmc: pbmc3k (counts in X) and pbmc68k_reduced (counts layer), one file with a dataset group.
    p3 = anndata.read_h5ad(data("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"))
    p68 = anndata.read_h5ad(data("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad"))
    p68 = anndata.AnnData(X=sp.csr_matrix(p68.layers["counts"]), obs=p68.obs, var=p68.var)
    # The two files name cell types differently: every method (celltyper and peers) is given the
    # labels harmonised to Cell Ontology term names through label_map_to_cell_ontology.tsv.
    p3.obs = p3.obs.assign(label=harmonized(p3.obs["celltype"], "pbmc3k-seurat-labels"), group="pbmc3k")
    p68.obs = p68.obs.assign(label=harmonized(p68.obs["bulk_labels"], "pbmc68k_reduced"), group="pbmc68k_reduced")
    # Each file keeps its own genes: celltyper embeds each cell from the genes it has; the
    # expression peers (and celltyper's expression route) see the other file's missing genes as 0.
    both = anndata.concat([p3[:, :], p68[:, :]], join="outer", fill_value=0, index_unique="-")
    both.X = sp.csr_matrix(both.X, dtype=np.float32)
    path = os.path.join(workdir, "pbmc.h5ad")
    both.write_h5ad(path)
    setups["pbmc"] = dict(path=path, folds=["pbmc68k_reduced", "pbmc3k"], ontology=True, is_log=False,
                          description="pbmc3k -> pbmc68k_reduced counts and the reverse (labels harmonised to CL)")
    # cellbench: Ensembl ids, singlets only.
    a = anndata.read_h5ad(data("cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad"))
    a = a[(a.obs["demuxlet_cls"].astype(str) == "SNG").values].copy()
    a.obs = a.obs.assign(label=a.obs["cell_line_demuxlet"].astype(str), group=a.obs["technology"].astype(str))
    path = os.path.join(workdir, "cellbench.h5ad")
    a.write_h5ad(path)
    setups["cellbench"] = dict(path=path, folds=sorted(a.obs["group"].unique()), ontology=False, is_log=False,
                               description="CEL-seq2 <-> Drop-seq, cell lines (singlets)")
    return setups


# ---- peers ----------------------------------------------------------------------------------

def expression(X, is_log):
    X = sp.csr_matrix(X, dtype=np.float64)
    if is_log:
        return X
    totals = np.asarray(X.sum(axis=1)).ravel()
    totals[totals == 0] = 1
    X = sp.diags(1e4 / totals) @ X
    X = sp.csr_matrix(X)
    X.data = np.log1p(X.data)
    return X


def peer_logreg(Xtr, ytr, Xte, threads):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler(with_mean=True).fit(Xtr.toarray())
    clip = lambda Z: np.clip(Z, -10, 10)
    model = LogisticRegression(C=1.0, max_iter=1000, n_jobs=threads)
    t = time.perf_counter()
    model.fit(clip(scaler.transform(Xtr.toarray())), ytr)
    train = time.perf_counter() - t
    t = time.perf_counter()
    pred = model.predict(clip(scaler.transform(Xte.toarray())))
    return pred, train, time.perf_counter() - t


def peer_xgboost(Xtr, ytr, Xte, threads):
    import xgboost
    classes = sorted(set(ytr))
    code = {c: i for i, c in enumerate(classes)}
    model = xgboost.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, tree_method="hist", n_jobs=threads, random_state=0)
    t = time.perf_counter()
    model.fit(Xtr, np.array([code[c] for c in ytr]))
    train = time.perf_counter() - t
    t = time.perf_counter()
    pred = np.array(classes)[model.predict(Xte)]
    return pred, train, time.perf_counter() - t


R_SINGLER = r"""
suppressMessages({library(SingleR); library(Matrix)})
args <- commandArgs(TRUE)
ref <- as(readMM(args[1]), "CsparseMatrix"); test <- as(readMM(args[2]), "CsparseMatrix")
genes <- readLines(args[3]); rownames(ref) <- genes; rownames(test) <- genes
labels <- readLines(args[4])
t0 <- proc.time()[["elapsed"]]
pred <- SingleR(test = test, ref = ref, labels = labels, de.method = "classic")
writeLines(pred$labels, args[5])
cat(proc.time()[["elapsed"]] - t0, "\n")
"""

R_SEURAT = r"""
suppressMessages({library(Seurat); library(Matrix)})
args <- commandArgs(TRUE)
ref <- as(readMM(args[1]), "CsparseMatrix"); test <- as(readMM(args[2]), "CsparseMatrix")
genes <- make.unique(gsub("_", "-", readLines(args[3]))); rownames(ref) <- genes; rownames(test) <- genes
colnames(ref) <- paste0("r", seq_len(ncol(ref))); colnames(test) <- paste0("q", seq_len(ncol(test)))
labels <- readLines(args[4])
t0 <- proc.time()[["elapsed"]]
r <- CreateSeuratObject(ref); r <- SetAssayData(r, slot = "data", new.data = ref)
q <- CreateSeuratObject(test); q <- SetAssayData(q, slot = "data", new.data = test)
n_features <- min(2000, nrow(ref))
r <- FindVariableFeatures(r, nfeatures = n_features, verbose = FALSE); r <- ScaleData(r, verbose = FALSE)
n_pcs <- min(30, ncol(ref) - 1, n_features - 1)
r <- RunPCA(r, npcs = n_pcs, verbose = FALSE)
anchors <- FindTransferAnchors(reference = r, query = q, dims = 1:n_pcs, verbose = FALSE)
pred <- TransferData(anchorset = anchors, refdata = labels, dims = 1:n_pcs, verbose = FALSE)
writeLines(as.character(pred$predicted.id), args[5])
cat(proc.time()[["elapsed"]] - t0, "\n")
"""


def peer_r(script, Xtr, ytr, Xte, genes, workdir):
    paths = [os.path.join(workdir, name) for name in ("ref.mtx", "test.mtx", "genes.txt", "labels.txt", "pred.txt", "script.R")]
    scipy.io.mmwrite(paths[0], sp.csr_matrix(Xtr.T))
    scipy.io.mmwrite(paths[1], sp.csr_matrix(Xte.T))
    with open(paths[2], "w") as f:
        f.write("\n".join(map(str, genes)) + "\n")
    with open(paths[3], "w") as f:
        f.write("\n".join(ytr) + "\n")
    with open(paths[5], "w") as f:
        f.write(script)
    t = time.perf_counter()
    run = subprocess.run(["Rscript", paths[5]] + paths[:5], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "Rscript failed")
    with open(paths[4]) as f:
        pred = [line.rstrip("\n") for line in f]
    # R reports one time for train+predict (SingleR and Seurat have no separate fit step).
    return np.array(pred), wall, 0.0


def r_package(name):
    return shutil.which("Rscript") and subprocess.run(["Rscript", "-e", f"suppressMessages(library({name}))"],
                                                       capture_output=True).returncode == 0


def run_peers(setup, threads, workdir, methods):
    """Per peer: predictions for every cell (NaN-free strings; '' for training cells), times."""
    a = anndata.read_h5ad(setup["path"])
    X = expression(a.X, setup["is_log"])
    labels = a.obs["label"].astype(str).values
    groups = a.obs["group"].astype(str).values
    out = {m: dict(pred=np.array([""] * a.n_obs, dtype=object), train=[], predict=[], error=None) for m in methods}
    for fold in setup["folds"]:
        train = groups != fold
        test = groups == fold
        ytr = list(labels[train])
        for method in methods:
            if out[method]["error"]:
                continue
            log(f"  {method}, held out {fold}")
            try:
                if method == "sklearn-logreg":
                    pred, t_train, t_pred = peer_logreg(X[train], ytr, X[test], threads)
                elif method == "xgboost-expr":
                    pred, t_train, t_pred = peer_xgboost(X[train], ytr, X[test], threads)
                elif method == "SingleR":
                    pred, t_train, t_pred = peer_r(R_SINGLER, X[train], ytr, X[test], a.var_names, workdir)
                elif method == "Seurat":
                    pred, t_train, t_pred = peer_r(R_SEURAT, X[train], ytr, X[test], a.var_names, workdir)
                out[method]["pred"][test] = pred
                out[method]["train"].append(t_train)
                out[method]["predict"].append(t_pred)
            except Exception as error:  # a peer failing is a result, not a crash of the benchmark
                out[method]["error"] = f"{type(error).__name__}: {error}"
                log(f"  {method} failed: {out[method]['error']}")
    return a, out


def evaluate_peers(celltyper, setup, a, out, workdir):
    """Score every peer with `celltyper evaluate` (same metrics code as cv)."""
    results = {}
    held_out = np.isin(a.obs["group"].astype(str).values, setup["folds"])
    for method, r in out.items():
        if r["error"]:
            results[method] = dict(error=r["error"])
            continue
        sub = anndata.AnnData(X=sp.csr_matrix((int(held_out.sum()), 1), dtype=np.float32),
                              obs=a.obs.loc[held_out, ["label", "group"]].assign(pred=r["pred"][held_out]).astype(str))
        path = os.path.join(workdir, f"pred_{method}.h5ad")
        sub.write_h5ad(path)
        json_path = os.path.join(workdir, f"eval_{method}.json")
        command = [celltyper, "evaluate", "--input", path, "--pred", "obs:pred", "--truth", "obs:label", "--group", "obs:group",
                   "--json", json_path]
        if setup["ontology"]:
            command += ["--label-map", LABEL_MAP, "--ontology", ONTOLOGY]
        else:
            command += ["--no-ontology"]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            results[method] = dict(error="celltyper evaluate: " + run.stderr.strip())
            continue
        with open(json_path) as f:
            evaluation = json.load(f)
        per_group = {g["group"]: g["metrics"] for g in evaluation.get("groups", [])}
        folds = [per_group[g] for g in setup["folds"] if g in per_group]
        results[method] = dict(folds={g: summarize(per_group[g]) for g in setup["folds"] if g in per_group},
                               mean=mean_of([summarize(f) for f in folds]),
                               train_seconds=statistics.fmean(r["train"]) if r["train"] else None,
                               predict_seconds=statistics.fmean(r["predict"]) if r["predict"] else None)
    return results


def summarize(metrics):
    row = dict(accuracy=metrics["accuracy"], macro_f1=metrics["macro"]["f1"], weighted_f1=metrics["weighted"]["f1"])
    onto = metrics.get("ontology")  # null when no ontology was used
    if onto and onto.get("n_mapped", 0) > 0:
        row.update(corrected_macro_f1=onto["corrected_macro_f1"], hierarchical_f=onto["hierarchical_f1"],
                   mean_lca_distance=onto["mean_lca_distance_all"])
    return row


def mean_of(rows):
    keys = set.intersection(*(set(r) for r in rows)) if rows else set()
    return {k: statistics.fmean(r[k] for r in rows) for k in sorted(keys)}


def run_celltyper(celltyper, setup, name, classifiers, threads, workdir, restrict=True, genes=None, features="genept,expression"):
    json_path = os.path.join(workdir, f"cv_{name}.json")
    command = [celltyper, "--quiet", "cv", "--reference", setup["path"], "--label", "obs:label", "--group", "obs:group",
               "--folds", ",".join(setup["folds"]), "--classifier", ",".join(classifiers), "--features", features,
               "--threads", str(threads), "--json", json_path]
    if genes:  # a gene store other than the default (bench/stores compares them)
        command += ["--genes", genes]
    if restrict:  # train each fold on the genes its held-out cells measured, as `train --restrict-genes QUERY` does
        command += ["--restrict-genes", "held-out"]
    if setup["ontology"]:
        command += ["--label-map", LABEL_MAP, "--ontology", ONTOLOGY, "--hierarchical"]
    else:
        command += ["--no-ontology"]
    t = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if run.returncode != 0:
        sys.exit(f"bench/peers: {' '.join(command)} failed:\n{run.stderr}")
    with open(json_path) as f:
        cv = json.load(f)
    results = {}
    for method in cv["methods"]:
        folds = {fold["group"]: summarize(fold["methods"][method]) for fold in cv["folds"]}
        first = cv["folds"][0]["methods"][method]
        results["celltyper " + method] = dict(
            folds=folds, mean=mean_of(list(folds.values())),
            train_seconds=statistics.fmean(f["methods"][method]["train_seconds"] for f in cv["folds"]),
            predict_seconds=statistics.fmean(f["methods"][method]["predict_seconds"] for f in cv["folds"]))
        del first
    return results, wall, cv.get("unmapped_labels", [])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--classifiers", default=None, help="celltyper classifiers (default: every one the binary knows)")
    parser.add_argument("--setups", default="savercat,pancreas,pbmc,cellbench")
    parser.add_argument("--peers", default="sklearn-logreg,xgboost-expr,SingleR,Seurat")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-restrict", action="store_true",
                        help="celltyper trains every fold on all genes (default: the genes detected in the held-out cells)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "peers"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    if not os.path.exists(celltyper):
        sys.exit(f"bench/peers: {celltyper} not built (scripts/setup.sh)")
    if args.classifiers is None:
        helptext = subprocess.run([celltyper, "train", "--help"], capture_output=True, text=True).stdout
        known = [c for c in ("logreg", "knn", "mlp", "xgboost") if c in helptext]
        args.classifiers = ",".join(known)
    classifiers = args.classifiers.split(",")
    peers = [p for p in args.peers.split(",") if p]
    for name, package in (("SingleR", "SingleR"), ("Seurat", "Seurat")):
        if name in peers and not r_package(package):
            log(f"{name} is not installed (Debian r-bioc-singler / r-cran-seurat): skipped")
            peers.remove(name)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="celltyper-peers-")
    setups = prepare(workdir)
    report = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), load=os.getloadavg()),
                  classifiers=classifiers, peers=peers, setups={})
    for name in args.setups.split(","):
        setup = setups[name]
        log(f"{name}: {setup['description']}")
        ours, wall, unmapped = run_celltyper(celltyper, setup, name, classifiers, args.threads, workdir, not args.no_restrict)
        a, predictions = run_peers(setup, args.threads, workdir, peers)
        theirs = evaluate_peers(celltyper, setup, a, predictions, workdir)
        report["setups"][name] = dict(description=setup["description"], folds=setup["folds"], celltyper_cv_wall_seconds=wall,
                                      unmapped_labels=unmapped, methods={**ours, **theirs})
    report["wall_seconds"] = time.perf_counter() - started
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    text = markdown(report)  # also fills report["mean_gap"]
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(args.out + ".md", "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)


def markdown(report):
    lines = ["# Peer benchmark: celltyper vs scikit-learn, XGBoost, SingleR, Seurat", "",
             f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} cores; total wall {report['wall_seconds']:.0f} s. "
             "Reproduce: `/usr/bin/python3 bench/peers/run.py`.", "",
             "Macro-F1 and ontology-aware metrics are means over the held-out folds; corrected macro-F1 counts a prediction equal to "
             "the truth or one of its descendants as correct; hF is the hierarchical F (Kiritchenko); LCA is the mean upward distance "
             "to the lowest common ancestor (0 = exact). Times are per fold (train includes features; R peers report train+predict together).", ""]
    # The product goal: celltyper's best configuration against the best peer, per setup and on
    # the mean over setups (each setup's mean over its folds), on macro-F1 and hierarchical F.
    lines += ["## Best celltyper configuration vs best peer", "",
              "| setup | best celltyper (macro-F1) | best peer (macro-F1) | gap | best celltyper hF | best peer hF | gap |",
              "|---|---|---|---:|---|---|---:|"]
    gaps = {"macro_f1": [], "hierarchical_f": []}
    for name, setup in report["setups"].items():
        cells = [f"{name}"]
        for key in ("macro_f1", "hierarchical_f"):
            ours = [(r["mean"][key], m) for m, r in setup["methods"].items() if m.startswith("celltyper ") and key in r.get("mean", {})]
            theirs = [(r["mean"][key], m) for m, r in setup["methods"].items() if not m.startswith("celltyper ") and key in r.get("mean", {})]
            if ours and theirs:
                best_ours, best_theirs = max(ours), max(theirs)
                gap = best_ours[0] - best_theirs[0]
                gaps[key].append(gap)
                cells += [f"{best_ours[1][len('celltyper '):]} {best_ours[0]:.3f}", f"{best_theirs[1]} {best_theirs[0]:.3f}", f"{gap:+.3f}"]
            else:
                cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if gaps["macro_f1"]:
        lines.append(f"Mean gap over setups (celltyper best minus peer best): macro-F1 {statistics.fmean(gaps['macro_f1']):+.3f}"
                     + (f", hierarchical F {statistics.fmean(gaps['hierarchical_f']):+.3f}" if gaps["hierarchical_f"] else "") + ".")
        lines.append("")
    report_gaps = {k: (statistics.fmean(v) if v else None) for k, v in gaps.items()}
    report["mean_gap"] = report_gaps
    for name, setup in report["setups"].items():
        lines += [f"## {name}: {setup['description']}", "",
                  "| method | macro-F1 | accuracy | corrected macro-F1 | hF | LCA | train s | predict s | per fold macro-F1 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        rows = []
        for method, r in setup["methods"].items():
            if "error" in r:
                lines.append(f"| {method} | failed: {r['error'][:120]} | | | | | | | |")
                continue
            m = r["mean"]
            fmt = lambda key, spec=".3f": (format(m[key], spec) if key in m else "")
            per_fold = ", ".join(f"{g}: {v['macro_f1']:.3f}" for g, v in r["folds"].items())
            t = lambda v: "" if v is None else f"{v:.2f}"
            rows.append((m.get("macro_f1", 0), f"| {method} | {fmt('macro_f1')} | {fmt('accuracy')} | {fmt('corrected_macro_f1')} | "
                         f"{fmt('hierarchical_f')} | {fmt('mean_lca_distance', '.2f')} | {t(r['train_seconds'])} | {t(r['predict_seconds'])} | {per_fold} |"))
        lines += [row for _, row in sorted(rows, key=lambda x: -x[0])]
        if setup.get("unmapped_labels"):
            lines.append(f"\nLabels without a CL id: {', '.join(setup['unmapped_labels'])}")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
