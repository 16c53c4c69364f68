#!/usr/bin/python3
"""Gene-panel benchmark: a model trained once on a reference, annotating queries that measure
other genes than the reference (issue "Accurate by default").

References (real data from ../shared/data; labels mapped to Cell Ontology ids through
label_map_to_cell_ontology.tsv where the dataset has rows there):
  * pbmc3k     pbmc3k (Seurat labels), a fixed-seed stratified 70% trains, 30% is held out;
  * savercat   10x V2 3' + V3 3' train, the 5' VDJ chemistry is held out;
  * pancreas   Xin (SMARTer, log values), stratified 70 / 30;
  * cellbench  CEL-seq2 singlets, stratified 70 / 30 (cell lines: flat metrics only).
Queries per reference:
  (a) the other datasets with its cell types: pbmc3k -> pbmc68k_reduced (counts layer) and ->
      savercat; savercat -> pbmc3k and pbmc68k_reduced; Xin -> Wang on the 219 genes Wang measured;
      CEL-seq2 -> Drop-seq;
  (b) the held-out part reduced to: all genes, a random 30% and 10% of the genes, the 500 most
      variable genes of the training part (Seurat-flavour dispersion, as scanpy) and a 200-gene
      marker panel (one-vs-rest Welch t on the training part, taken round-robin over classes).
Each query is its own .h5ad holding only its genes (counts in X; log values for pancreas).

Methods (rows):
  * default         `celltyper train` with no flags but the labels (whatever the default
                    configuration is), trained once per reference; `celltyper annotate` per query;
  * oracle          `celltyper train --restrict-genes QUERY.h5ad` per query, then annotate;
  * reference-mode  `celltyper annotate --reference REF.h5ad --label obs:label ...` (trains on the
                    fly on the shared genes), when the binary has it;
  * peers           from bench/peers/run.py (imported): scikit-learn logistic regression on
                    log1p-CP10k (the CellTypist method), XGBoost, SingleR, Seurat, each trained on
                    the reference restricted to the genes it shares with the query.
Every row is scored by `celltyper evaluate` (accuracy, macro-F1; with CL ids corrected accuracy and
macro-F1, hierarchical F, LCA distance); train and annotate wall seconds are recorded.

    /usr/bin/python3 bench/panels/run.py [--build build] [--quick] [--skip-peers] [--references pbmc3k,...]

Writes bench/results/panels.json and bench/results/panels.md.
"""
import argparse
import csv
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# OpenMP threads that spin while waiting (the default) make XGBoost's 2 threads ~6x slower than 1 when
# the cores are shared; passive waiting for this process and the R peers. celltyper runs with the
# caller's own environment (CELLTYPER_ENV) so its timings are what a user gets.
CELLTYPER_ENV = dict(os.environ)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _load_peers():
    """bench/peers/run.py as a module (its name `run` would clash with this file's)."""
    path = os.path.join(ROOT, "bench", "peers", "run.py")
    spec = importlib.util.spec_from_file_location("celltyper_bench_peers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = _load_peers()
LABEL_MAP = peers.LABEL_MAP
ONTOLOGY = peers.ONTOLOGY
PEERS = ["sklearn-logreg", "xgboost-expr", "SingleR", "Seurat"]
PANEL_NAMES = ["all genes", "random 30% genes", "random 10% genes", "500 HVG", "200 markers"]
B_CELL = "CL:0000236"


def log(message):
    print(f"[panels] {message}", file=sys.stderr, flush=True)


# ---- data ------------------------------------------------------------------------------------

def dataset(X, labels, genes, obs_names, group=None):
    """AnnData with counts (or log values) in a CSR float32 X and obs['truth'] (original labels)."""
    obs = pd.DataFrame({"truth": np.asarray(labels).astype(str)}, index=pd.Index(np.asarray(obs_names).astype(str)))
    if group is not None:
        obs["group"] = np.asarray(group).astype(str)
    a = anndata.AnnData(X=sp.csr_matrix(X, dtype=np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(np.asarray(genes).astype(str))))
    return a


def load_all():
    p3 = anndata.read_h5ad(peers.data("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"))
    pbmc3k = dataset(p3.X, p3.obs["celltype"], p3.var_names, p3.obs_names)
    p68 = anndata.read_h5ad(peers.data("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad"))
    pbmc68k = dataset(p68.layers["counts"], p68.obs["bulk_labels"], p68.var_names, p68.obs_names)
    s = anndata.read_h5ad(peers.data("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad"))
    savercat = dataset(s.X, s.obs["celltype"], s.var_names, s.obs_names, group=s.obs["tech"])
    p = anndata.read_h5ad(peers.data("pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad"))
    study = p.obs["study"].astype(str).values
    xin = np.array([v.lower().startswith("xin") for v in study])
    wang = np.array([v.lower().startswith("wang") for v in study])
    in_wang = p.var["in_wang_subset"].astype(bool).values
    pancreas_xin = dataset(p.X[xin], p.obs["celltype"].values[xin], p.var_names, p.obs_names[xin])
    pancreas_wang = dataset(p.X[wang][:, in_wang], p.obs["celltype"].values[wang], p.var_names[in_wang], p.obs_names[wang])
    c = anndata.read_h5ad(peers.data("cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad"))
    single = (c.obs["demuxlet_cls"].astype(str) == "SNG").values
    tech = c.obs["technology"].astype(str).values
    cel = single & (tech == "CEL-seq2")
    drop = single & (tech == "Drop-seq")
    celseq = dataset(c.X[cel], c.obs["cell_line_demuxlet"].values[cel], c.var_names, c.obs_names[cel])
    dropseq = dataset(c.X[drop], c.obs["cell_line_demuxlet"].values[drop], c.var_names, c.obs_names[drop])
    return dict(pbmc3k=pbmc3k, pbmc68k=pbmc68k, savercat=savercat, xin=pancreas_xin, wang=pancreas_wang,
                celseq=celseq, dropseq=dropseq)


def stratified_holdout(labels, fraction, seed):
    """Boolean mask of held-out cells: round(fraction * n) cells of every class (fixed seed)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels)):
        index = np.flatnonzero(labels == label)
        n = int(round(fraction * len(index)))
        if len(index) - n < 1:
            n = len(index) - 1
        held[rng.permutation(index)[:n]] = True
    return held


def references(d, seed):
    """name -> reference spec (training part, held-out part, cross-dataset queries)."""
    refs = {}
    p3 = d["pbmc3k"]
    held = stratified_holdout(p3.obs["truth"].values, 0.3, seed)
    refs["pbmc3k"] = dict(
        description="pbmc3k (Seurat labels), stratified 70% trains / 30% held out",
        dataset="pbmc3k-seurat-labels", ontology=True, is_log=False, train=p3[~held].copy(), held=p3[held].copy(),
        held_name="held-out 30%",
        cross=[("pbmc68k_reduced (counts)", d["pbmc68k"], "pbmc68k_reduced"),
               ("savercat (3 techs)", d["savercat"], "savercat-pbmc-3tech")])
    s = d["savercat"]
    vdj = s.obs["group"].values == "VDJ"
    refs["savercat"] = dict(
        description="savercat 10x V2 3' + V3 3' train / 5' VDJ held out (coarse labels)",
        dataset="savercat-pbmc-3tech", ontology=True, is_log=False, train=s[~vdj].copy(), held=s[vdj].copy(),
        held_name="VDJ 5'",
        cross=[("pbmc3k", d["pbmc3k"], "pbmc3k-seurat-labels"),
               ("pbmc68k_reduced (counts)", d["pbmc68k"], "pbmc68k_reduced")])
    x = d["xin"]
    held = stratified_holdout(x.obs["truth"].values, 0.3, seed)
    refs["pancreas"] = dict(
        description="pancreas Xin (SMARTer, log values, 980 genes), stratified 70% trains / 30% held out",
        dataset="pancreas-xin-wang-scclassify", ontology=True, is_log=True, train=x[~held].copy(), held=x[held].copy(),
        held_name="held-out 30%",
        cross=[("Wang (219 genes)", d["wang"], "pancreas-xin-wang-scclassify")])
    c = d["celseq"]
    held = stratified_holdout(c.obs["truth"].values, 0.3, seed)
    refs["cellbench"] = dict(
        description="cellbench CEL-seq2 singlets (3 cell lines), stratified 70% trains / 30% held out",
        dataset=None, ontology=False, is_log=False, train=c[~held].copy(), held=c[held].copy(),
        held_name="held-out 30%",
        cross=[("Drop-seq", d["dropseq"], None)])
    return refs


# ---- gene panels (computed on the training part) --------------------------------------------

def log_normalized(X, is_log):
    return peers.expression(X, is_log)


def seurat_hvg(X, is_log, n_top):
    """scanpy's highly_variable_genes(flavor='seurat') on log1p-CP10k (or the given log values):
    dispersion of expm1(X) normalised within 20 bins of mean expression; indices of the top n."""
    L = log_normalized(X, is_log)
    E = L.copy()
    E.data = np.expm1(E.data)
    n = E.shape[0]
    mean = np.asarray(E.mean(axis=0)).ravel()
    mean_sq = np.asarray(E.multiply(E).mean(axis=0)).ravel()
    var = (mean_sq - mean ** 2) * n / max(n - 1, 1)
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    frame = pd.DataFrame({"mean": mean, "dispersion": dispersion})
    frame["bin"] = pd.cut(frame["mean"], bins=20)
    grouped = frame.groupby("bin", observed=False)["dispersion"]
    bin_mean = grouped.mean()
    bin_std = grouped.std(ddof=1)
    single = bin_std.isnull()  # bins with one gene: scanpy sets std = mean, mean = 0
    bin_std[single] = bin_mean[single]
    bin_mean[single] = 0
    norm = (frame["dispersion"].values - bin_mean.reindex(frame["bin"]).values) / bin_std.reindex(frame["bin"]).values
    norm = np.where(np.isfinite(norm), norm, -np.inf)
    order = np.argsort(-norm, kind="stable")
    return np.sort(order[:n_top])


def marker_panel(X, labels, is_log, n_genes):
    """Top one-vs-rest markers per class (Welch t on log1p-CP10k, positive log fold change only),
    taken round-robin over classes until n_genes distinct genes."""
    L = log_normalized(X, is_log).tocsc()
    L2 = L.multiply(L).tocsc()
    classes = sorted(set(labels))
    rankings = []
    total = np.asarray(L.sum(axis=0)).ravel()
    total_sq = np.asarray(L2.sum(axis=0)).ravel()
    n_all = L.shape[0]
    for c in classes:
        inside = labels == c
        n_in, n_out = int(inside.sum()), int(n_all - inside.sum())
        s_in = np.asarray(L[inside].sum(axis=0)).ravel()
        q_in = np.asarray(L2[inside].sum(axis=0)).ravel()
        m_in, m_out = s_in / n_in, (total - s_in) / max(n_out, 1)
        v_in = np.maximum(q_in / n_in - m_in ** 2, 0) * n_in / max(n_in - 1, 1)
        v_out = np.maximum((total_sq - q_in) / max(n_out, 1) - m_out ** 2, 0) * n_out / max(n_out - 1, 1)
        t = (m_in - m_out) / np.sqrt(v_in / n_in + v_out / max(n_out, 1) + 1e-12)
        t[(m_in - m_out) <= 0] = -np.inf
        rankings.append(list(np.argsort(-t, kind="stable")))
    chosen, seen, depth = [], set(), 0
    while len(chosen) < n_genes and depth < L.shape[1]:
        for ranking in rankings:
            g = ranking[depth]
            if g not in seen and len(chosen) < n_genes:
                seen.add(g)
                chosen.append(g)
        depth += 1
    return np.sort(np.array(chosen))


def panels(train, is_log, seed, names):
    n = train.n_vars
    out = {}
    for name in names:
        rng = np.random.default_rng([seed, PANEL_NAMES.index(name)])  # a panel's genes do not depend on the other panels run
        if name == "all genes":
            idx = np.arange(n)
        elif name == "random 30% genes":
            idx = np.sort(rng.choice(n, int(round(0.3 * n)), replace=False))
        elif name == "random 10% genes":
            idx = np.sort(rng.choice(n, int(round(0.1 * n)), replace=False))
        elif name == "500 HVG":
            idx = seurat_hvg(train.X, is_log, 500)
        elif name == "200 markers":
            idx = marker_panel(train.X, train.obs["truth"].values, is_log, 200)
        out[name] = list(train.var_names[idx])
    return out


# ---- celltyper --------------------------------------------------------------------------------

def ct_run(command, what):
    """Runs a celltyper command; waits and retries while the binary is being rebuilt."""
    for attempt in range(30):
        try:
            t = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True, env=CELLTYPER_ENV)
            wall = time.perf_counter() - t
        except OSError as error:  # missing or busy (being relinked) binary
            log(f"  {what}: {error}; waiting for the binary (attempt {attempt + 1})")
            time.sleep(20)
            continue
        if run.returncode in (126, 127) or (run.returncode < 0 and attempt < 2):
            log(f"  {what}: exit {run.returncode}; retrying in 20 s (binary being rebuilt?)")
            time.sleep(20)
            continue
        return run, wall
    raise RuntimeError(f"{what}: binary unavailable")


def error_of(run):
    lines = [l for l in (run.stderr or "").strip().splitlines() if l.strip()]
    return (lines[-1] if lines else f"exit {run.returncode}")[:400]


def help_defaults(celltyper, command):
    text = ct_run([celltyper, command, "--help"], f"{command} --help")[0].stdout
    defaults = {}
    for line in text.splitlines():
        m = re.match(r"\s+(?:-\w,)?(--[\w-]+)\s+\S*?=(\S+)", line)
        if m:
            defaults[m.group(1)] = m.group(2)
        m = re.match(r"\s+(--[\w-]+)\s+\S+\s+\[(\w+)\].*\(default ([^,)]+)", line)
        if m:
            defaults[f"{m.group(1)} [{m.group(2)}]"] = m.group(3)
    return text, defaults


def model_provenance(path):
    try:
        return _model_provenance(path)
    except Exception as error:  # a model layout this script does not know is not a failed benchmark
        return dict(provenance_error=f"{type(error).__name__}: {error}")


def _model_provenance(path):
    import h5py
    info = {}
    with h5py.File(path, "r") as f:
        for key, value in f.attrs.items():
            if key in ("provenance_json", "validation_json"):
                continue
            info[key] = value.tolist() if hasattr(value, "tolist") else (value.decode() if isinstance(value, bytes) else value)
        prov = json.loads(f.attrs["provenance_json"]) if "provenance_json" in f.attrs else {}
        validation = json.loads(f.attrs["validation_json"]) if "validation_json" in f.attrs else {}
    small = {k: v for k, v in prov.items() if len(json.dumps(v)) <= 1500}
    if isinstance(prov.get("gene_store"), dict):
        small["gene_store"] = {k: prov["gene_store"].get(k) for k in ("backend", "identity_hash", "n_genes", "store_dims", "model")}
    info["provenance"] = small
    if validation:
        info["validation"] = {k: validation.get(k) for k in ("accuracy", "n_cells", "split")}
        info["validation"]["macro_f1"] = (validation.get("macro") or {}).get("f1")
    return info


def label_args(ref, path):
    args = ["--reference", path, "--label", "obs:label"]
    if ref["dataset"]:
        args += ["--label-map", LABEL_MAP, "--label-dataset", ref["dataset"]]
    return args


def annotate(celltyper, command, what):
    """annotate; retried with --allow-low-coverage only when the command refuses and says so."""
    run, wall = ct_run(command, what)
    refused = None
    if run.returncode != 0 and "allow-low-coverage" in (run.stderr or ""):
        refused = error_of(run)
        run, wall = ct_run(command + ["--allow-low-coverage"], what + " --allow-low-coverage")
    return run, wall, refused


def predictions_of(out_path, ontology):
    obs = anndata.read_h5ad(out_path, backed="r").obs
    column = "celltyper_ontology_id" if ontology else "celltyper_label"
    pred = obs[column].astype(object).where(obs[column].notna(), "").astype(str).values
    unassigned = int((obs["celltyper_label"].astype(str) == "Unassigned").sum()) if "celltyper_label" in obs else None
    return pred, unassigned, column


# ---- scoring ---------------------------------------------------------------------------------

def evaluate(celltyper, query, pred, ontology, workdir, tag):
    """`celltyper evaluate` on obs truth (the query's own labels, mapped through its dataset's rows
    of the label map) against pred (CL ids with an ontology, else labels)."""
    path = os.path.join(workdir, f"pred_{tag}.h5ad")
    sub = anndata.AnnData(X=sp.csr_matrix((len(pred), 1), dtype=np.float32),
                          obs=pd.DataFrame({"truth": query["truth"], "pred": np.asarray(pred, dtype=str)},
                                           index=pd.Index([f"c{i}" for i in range(len(pred))])))
    sub.write_h5ad(path)
    json_path = os.path.join(workdir, f"eval_{tag}.json")
    command = [celltyper, "--quiet", "evaluate", "--input", path, "--truth", "obs:truth", "--pred", "obs:pred",
               "--probabilities", "none", "--embedding", "none", "--json", json_path]
    if ontology:
        command += ["--label-map", LABEL_MAP, "--label-dataset", query["dataset"], "--ontology", ONTOLOGY, "--compare", "ontology"]
    else:
        command += ["--no-ontology", "--compare", "labels"]
    run, _ = ct_run(command, f"evaluate {tag}")
    if run.returncode != 0:
        return dict(error="celltyper evaluate: " + error_of(run))
    with open(json_path) as f:
        evaluation = json.load(f)
    overall = evaluation["overall"]
    row = peers.summarize(overall)
    onto = overall.get("ontology")
    if onto and onto.get("n_mapped", 0) > 0:
        row["corrected_accuracy"] = onto["corrected_accuracy"]
    row["n_missing_prediction"] = evaluation.get("n_missing_prediction", 0)
    return row


def read_ontology(path):
    """child -> parents: is_a from an OBO file, the distance-1 ancestors of a CELLxGENE .json export
    (as celltyper reads them)."""
    if path.endswith(".json"):
        with open(path) as f:
            terms = json.load(f)
        return {term: {a for a, distance in (entry.get("ancestors") or {}).items() if distance == 1} for term, entry in terms.items()}
    parents, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                current = None
            elif line.startswith("id: "):
                current = line[4:]
                parents.setdefault(current, set())
            elif line.startswith("is_a: ") and current:
                parents[current].add(line[6:].split()[0])
    return parents


def at_or_below(term, ancestor, parents, cache={}):
    key = (term, ancestor)
    if key not in cache:
        seen, stack = set(), [term]
        while stack:
            t = stack.pop()
            if t == ancestor:
                cache[key] = True
                return True
            if t in seen:
                continue
            seen.add(t)
            stack.extend(parents.get(t, ()))
        cache[key] = False
    return cache[key]


# savercat's "T/NK cells" (lymphocyte in the label map) names two alternatives: a B cell is a
# lymphocyte but no T/NK cell (evaluate reads it so: LabelMapper::alternatives_within).
SAVERCAT_ALTERNATIVES = {"T/NK cells": ["CL:0000084", "CL:0000623"]}


def label_to_cl(dataset_name):
    table = {}
    with open(LABEL_MAP) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["dataset"] == dataset_name:
                table[row["label"]] = row["cl_id"]
    return table


def special_checks(query, pred_ids, parents):
    """pbmc68k: share of 'CD19+ B' cells predicted B cell or below; savercat: coarse accuracy
    over all cells (prediction at or below the truth term; no prediction = wrong)."""
    out = {}
    truth = np.asarray(query["truth"])
    if query["dataset"] == "pbmc68k_reduced":
        b = truth == "CD19+ B"
        out["cd19_b_predicted_b"] = float(np.mean([at_or_below(p, B_CELL, parents) for p in pred_ids[b]])) if b.any() else None
    if query["dataset"] == "savercat-pbmc-3tech":
        to_cl = label_to_cl("savercat-pbmc-3tech")

        def right(p, t):  # (as evaluate reads a label of alternatives: "T/NK cells" is lymphocyte itself, or T or NK)
            if not p:
                return False
            if t in SAVERCAT_ALTERNATIVES and p != to_cl[t]:
                return any(at_or_below(p, part, parents) for part in SAVERCAT_ALTERNATIVES[t])
            return at_or_below(p, to_cl[t], parents)
        out["coarse_accuracy_all_cells"] = float(np.mean([right(p, t) for p, t in zip(pred_ids, truth)]))
    return out


# ---- peers -----------------------------------------------------------------------------------

def xgboost_capped(Xtr, ytr, Xte, threads, rounds):
    """bench/peers' XGBoost with its boosting rounds capped (its 200 are hard-coded)."""
    import xgboost
    original = xgboost.XGBClassifier
    xgboost.XGBClassifier = lambda **kwargs: original(**{**kwargs, "n_estimators": rounds})
    try:
        return peers.peer_xgboost(Xtr, ytr, Xte, threads)
    finally:
        xgboost.XGBClassifier = original


def run_peer(method, train, query_data, is_log, threads, rounds, workdir):
    shared_set = set(query_data.var_names)
    shared = [g for g in train.var_names if g in shared_set]
    if not shared:
        raise RuntimeError("no gene shared with the reference")
    Xtr = log_normalized(train[:, shared].X, is_log)
    Xte = log_normalized(query_data[:, shared].X, is_log)
    ytr = list(train.obs["truth"].astype(str).values)
    if method == "sklearn-logreg":
        return peers.peer_logreg(Xtr, ytr, Xte, threads)
    if method == "xgboost-expr":
        return xgboost_capped(Xtr, ytr, Xte, threads, rounds)
    os.makedirs(workdir, exist_ok=True)
    script = peers.R_SINGLER if method == "SingleR" else peers.R_SEURAT
    return peers.peer_r(script, Xtr, ytr, Xte, shared, workdir)


# ---- the benchmark ---------------------------------------------------------------------------

def write_query(a, genes, path):
    q = anndata.AnnData(X=sp.csr_matrix(a[:, genes].X, dtype=np.float32), obs=a.obs[["truth"]].copy(),
                        var=pd.DataFrame(index=pd.Index(list(genes))))
    q.write_h5ad(path)


def run_reference(name, ref, celltyper, args, workdir, parents, has_reference_mode, peer_list):
    rdir = os.path.join(workdir, name)
    os.makedirs(rdir, exist_ok=True)
    train = ref["train"]
    ref_path = os.path.join(rdir, "reference.h5ad")
    r = train.copy()
    r.obs = r.obs.assign(label=r.obs["truth"].values)[["label"]]
    r.write_h5ad(ref_path)
    result = dict(description=ref["description"], label_dataset=ref["dataset"], ontology=ref["ontology"],
                  n_train_cells=int(train.n_obs), n_genes=int(train.n_vars), n_held_out_cells=int(ref["held"].n_obs),
                  classes=sorted(set(train.obs["truth"])), queries={})

    # default: trained once
    log(f"{name}: default train on {train.n_obs} cells x {train.n_vars} genes")
    model = os.path.join(rdir, "default.h5")
    run, train_wall = ct_run([celltyper, "train"] + label_args(ref, ref_path) + args.train_args.split() + ["--out", model],
                             f"{name} default train")
    if run.returncode != 0:
        result["default_model"] = dict(error=error_of(run))
        model = None
    else:
        result["default_model"] = dict(train_seconds=train_wall, summary=(run.stdout + run.stderr).strip().splitlines()[-3:],
                                       **model_provenance(model))
    # ensemble (--ensemble-args): a second model, trained once; annotate averages both
    second, second_wall = None, None
    if args.ensemble_args and model:
        second = os.path.join(rdir, "ensemble_second.h5")
        log(f"{name}: second model of the ensemble: train {args.ensemble_args}")
        run2, second_wall = ct_run([celltyper, "train"] + label_args(ref, ref_path) + args.ensemble_args.split() + ["--out", second],
                                   f"{name} ensemble train")
        if run2.returncode != 0:
            result["ensemble_model"] = dict(error=error_of(run2))
            second = None
        else:
            result["ensemble_model"] = dict(train_seconds=second_wall, args=args.ensemble_args, **model_provenance(second))

    # queries
    queries = []
    for qname, data, dataset_name in ref["cross"]:
        queries.append(dict(name=qname, kind="cross-dataset", data=data, dataset=dataset_name))
    panel_names = args.panels
    for pname, genes in panels(train, ref["is_log"], args.seed, panel_names).items():
        queries.append(dict(name=f"{ref['held_name']}, {pname}", kind="panel", panel=pname,
                            data=ref["held"][:, genes].copy(), dataset=ref["dataset"]))
    if args.quick:
        queries = [q for q in queries if q["kind"] == "panel"] + [q for q in queries if q["kind"] == "cross-dataset"][:1]

    for qi, q in enumerate(queries):
        data = q["data"]
        qpath = os.path.join(rdir, f"query{qi}.h5ad")
        write_query(data, list(data.var_names), qpath)
        q["truth"] = data.obs["truth"].astype(str).values
        shared = len(set(data.var_names) & set(train.var_names))
        entry = dict(kind=q["kind"], panel=q.get("panel"), n_cells=int(data.n_obs), n_genes=int(data.n_vars),
                     n_genes_shared_with_reference=shared, truth_dataset=q["dataset"], methods={})
        log(f"{name} -> {q['name']}: {data.n_obs} cells x {data.n_vars} genes ({shared} shared)")
        pred_ids = {}

        def score_celltyper(method, run, wall, out, refused=None, train_seconds=None):
            if run.returncode != 0:
                entry["methods"][method] = dict(error=error_of(run), refused_low_coverage=refused)
                log(f"  {method} failed: {error_of(run)}")
                return
            pred, unassigned, column = predictions_of(out, ref["ontology"])
            row = evaluate(celltyper, q, pred, ref["ontology"], rdir, f"{qi}_{method}")
            row.update(train_seconds=train_seconds, annotate_seconds=wall, n_unassigned=unassigned, pred_column=column)
            if refused:
                row["refused_low_coverage"] = refused
            entry["methods"][method] = row
            pred_ids[method] = pred

        # default
        if model:
            out = os.path.join(rdir, f"q{qi}_default.h5ad")
            run, wall, refused = annotate(celltyper, [celltyper, "annotate", "--model", model, "--input", qpath, "--out", out], f"{name} default annotate")
            score_celltyper("default", run, wall, out, refused, train_wall)
        else:
            entry["methods"]["default"] = dict(error=result["default_model"]["error"])
        if second:
            out = os.path.join(rdir, f"q{qi}_ensemble.h5ad")
            run, wall, refused = annotate(celltyper, [celltyper, "annotate", "--model", model, "--model", second, "--input", qpath, "--out", out],
                                          f"{name} ensemble annotate")
            score_celltyper("ensemble", run, wall, out, refused, train_wall + second_wall)
        elif args.ensemble_args:
            entry["methods"]["ensemble"] = dict(error=result.get("ensemble_model", result["default_model"]).get("error", "no model"))
        if args.default_only:
            peer_list_here = []
        else:
            peer_list_here = peer_list
        # oracle
        omodel = os.path.join(rdir, f"q{qi}_oracle.h5")
        run, owall = ct_run([celltyper, "train"] + label_args(ref, ref_path) + args.train_args.split() + ["--restrict-genes", qpath, "--out", omodel],
                            f"{name} oracle train") if not args.default_only else (None, None)
        if args.default_only:
            pass
        elif run.returncode != 0:
            entry["methods"]["oracle"] = dict(error="train: " + error_of(run))
            log(f"  oracle train failed: {error_of(run)}")
        else:
            out = os.path.join(rdir, f"q{qi}_oracle.h5ad")
            run, wall, refused = annotate(celltyper, [celltyper, "annotate", "--model", omodel, "--input", qpath, "--out", out], f"{name} oracle annotate")
            score_celltyper("oracle", run, wall, out, refused, owall)
        # reference-mode
        if args.default_only:
            pass
        elif has_reference_mode:
            out = os.path.join(rdir, f"q{qi}_refmode.h5ad")
            run, wall, refused = annotate(celltyper, [celltyper, "annotate"] + label_args(ref, ref_path) + ["--input", qpath, "--out", out],
                                          f"{name} reference-mode annotate")
            score_celltyper("reference-mode", run, wall, out, refused)
        else:
            entry["methods"]["reference-mode"] = dict(error="not available (annotate --help has no --reference)")
        # peers
        to_cl = label_to_cl(ref["dataset"]) if ref["ontology"] else None
        for method in peer_list_here:
            log(f"  {method}")
            try:
                pred, t_train, t_pred = run_peer(method, train, data, ref["is_log"], args.threads, args.xgb_rounds,
                                                 os.path.join(rdir, f"r{qi}_{method}"))
                pred = np.asarray(pred).astype(str)
                if to_cl is not None:
                    pred = np.array([to_cl.get(p, p) for p in pred])
                row = evaluate(celltyper, q, pred, ref["ontology"], rdir, f"{qi}_{method}")
                row.update(train_seconds=t_train, annotate_seconds=t_pred)
                if method in ("SingleR", "Seurat"):
                    row["note"] = "R: one wall time for train + predict (in train_seconds)"
                entry["methods"][method] = row
                pred_ids[method] = pred
            except Exception as error:  # a peer failing is a result
                message = f"{type(error).__name__}: {error}"[:400]
                entry["methods"][method] = dict(error=message)
                log(f"  {method} failed: {message}")
        if ref["ontology"]:
            for method, pred in pred_ids.items():
                entry["methods"][method].update(special_checks(q, pred, parents))
        for method, row in entry["methods"].items():
            if "macro_f1" in row:
                log(f"  {method:15s} macro-F1 {row['macro_f1']:.3f}" + (f"  hF {row['hierarchical_f']:.3f}" if "hierarchical_f" in row else "")
                    + f"  ({(row.get('train_seconds') or 0) + (row.get('annotate_seconds') or 0):.1f} s)")
        result["queries"][q["name"]] = entry
    return result


def machine_info(celltyper):
    info = dict(platform=platform.platform(), cpus=os.cpu_count(), load_at_start=os.getloadavg(), python=sys.version.split()[0],
                peers_omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"), celltyper_omp_wait_policy=CELLTYPER_ENV.get("OMP_WAIT_POLICY"))
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = models[0] if models else None
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    version = ct_run([celltyper, "--version"], "--version")[0].stdout.strip()
    binary = dict(path=celltyper, version=version,
                  modified_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(celltyper))))
    source = dict(commit=git("rev-parse", "HEAD"), commit_subject=git("log", "-1", "--format=%s"),
                  commit_date=git("log", "-1", "--format=%cI"),
                  uncommitted_source_changes=git("status", "--porcelain", "--", "src", "include", "CMakeLists.txt").splitlines())
    return info, binary, source


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 2 panels per reference (random 10%%, 200 markers), one cross-dataset query, the logreg peer only")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--train-args", default="", help="experiments: extra flags of the default (and oracle) `celltyper train`")
    parser.add_argument("--ensemble-args", default="",
                        help="experiments: also an 'ensemble' row: a second model trained with these flags (e.g. '--classifier xgboost'), "
                             "annotate averaging it with the default model (`annotate --model DEFAULT --model SECOND`)")
    parser.add_argument("--default-only", action="store_true", help="experiments: only the default rows (no oracle, reference mode, peers)")
    parser.add_argument("--references", default="pbmc3k,savercat,pancreas,cellbench")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--threads", type=int, default=2, help="threads of the peers")
    parser.add_argument("--xgb-rounds", type=int, default=100, help="XGBoost peer boosting rounds")
    parser.add_argument("--seed", type=int, default=0, help="held-out split and random panels")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "panels"))
    parser.add_argument("--render-only", action="store_true", help="rewrite OUT.md (and OUT.json's summary) from OUT.json, running nothing")
    args = parser.parse_args()
    if args.render_only:
        with open(args.out + ".json") as f:
            report = json.load(f)
        report["summary"] = summarize_report(report)
        with open(args.out + ".json", "w") as f:
            json.dump(report, f, indent=2)
        with open(args.out + ".md", "w") as f:
            f.write(markdown(report))
        return
    celltyper = os.path.abspath(os.path.join(args.build, "celltyper")) if os.path.isdir(args.build) else args.build
    if not os.path.exists(celltyper):
        sys.exit(f"bench/panels: {celltyper} not built (scripts/setup.sh)")
    store = os.environ.get("CELLTYPER_GENE_STORE") or os.path.join(os.path.dirname(celltyper), "share", "celltyper", "gene_embeddings.h5")
    if not os.path.exists(store):
        sys.exit(f"bench/panels: no gene store at {store}: run scripts/build_default_gene_store.sh (or set CELLTYPER_GENE_STORE)")
    args.panels = ["random 10% genes", "200 markers"] if args.quick else PANEL_NAMES
    peer_list = [] if args.skip_peers else [p for p in args.peers.split(",") if p]
    if args.quick:
        peer_list = [p for p in peer_list if p == "sklearn-logreg"]
    for name, package in (("SingleR", "SingleR"), ("Seurat", "Seurat")):
        if name in peer_list and not peers.r_package(package):
            log(f"{name} is not installed: skipped")
            peer_list.remove(name)

    started = time.perf_counter()
    machine, binary, source = machine_info(celltyper)
    train_help, train_defaults = help_defaults(celltyper, "train")
    annotate_help, annotate_defaults = help_defaults(celltyper, "annotate")
    has_reference_mode = re.search(r"^\s+(-\w,)?--reference\b", annotate_help, re.M) is not None
    log(f"celltyper {binary['version']} (source {source['commit'][:10]}), reference-mode: {has_reference_mode}, peers: {peer_list}")
    workdir = tempfile.mkdtemp(prefix="celltyper-panels-")
    parents = read_ontology(ONTOLOGY)
    data = load_all()
    refs = references(data, args.seed)
    report = dict(machine=machine, celltyper_binary=binary, celltyper_source=source, gene_store=store,
                  train_help_defaults=train_defaults, annotate_help_defaults=annotate_defaults,
                  reference_mode_available=has_reference_mode, peers=peer_list, xgboost_rounds=args.xgb_rounds,
                  quick=args.quick, seed=args.seed, panels=args.panels, train_args=args.train_args,
                  ensemble_args=args.ensemble_args, references={})
    for name in args.references.split(","):
        report["references"][name] = run_reference(name, refs[name], celltyper, args, workdir, parents, has_reference_mode, peer_list)
    report["wall_seconds"] = time.perf_counter() - started
    report["summary"] = summarize_report(report)
    text = markdown(report)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    with open(args.out + ".md", "w") as f:
        f.write(text)
    print(text)
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# ---- summaries -------------------------------------------------------------------------------

def methods_in(report):
    seen = []
    for ref in report["references"].values():
        for q in ref["queries"].values():
            for m in q["methods"]:
                if m not in seen:
                    seen.append(m)
    return seen


def summarize_report(report):
    summary = dict(gaps=[], means={}, checks={})
    for rname, ref in report["references"].items():
        for qname, q in ref["queries"].items():
            d, o = q["methods"].get("default", {}), q["methods"].get("oracle", {})
            if "macro_f1" in d and "macro_f1" in o:
                gap = dict(reference=rname, query=qname, macro_f1_default=d["macro_f1"], macro_f1_oracle=o["macro_f1"],
                           macro_f1_gap=d["macro_f1"] - o["macro_f1"])
                if "hierarchical_f" in d and "hierarchical_f" in o:
                    gap.update(hf_default=d["hierarchical_f"], hf_oracle=o["hierarchical_f"], hf_gap=d["hierarchical_f"] - o["hierarchical_f"])
                gap["within_0.02"] = gap["macro_f1_gap"] >= -0.02
                summary["gaps"].append(gap)
    # means over every query (a failed row counts as missing, reported with its count)
    n_queries = sum(len(ref["queries"]) for ref in report["references"].values())
    for method in methods_in(report):
        f1s, hfs, accs, unassigned, failed = [], [], [], [], 0
        for ref in report["references"].values():
            for q in ref["queries"].values():
                row = q["methods"].get(method, {})
                if "macro_f1" in row:
                    f1s.append(row["macro_f1"])
                    accs.append(row["accuracy"])
                    unassigned.append((row.get("n_unassigned") or 0) / q["n_cells"])
                    if "hierarchical_f" in row:
                        hfs.append(row["hierarchical_f"])
                else:
                    failed += 1
        summary["means"][method] = dict(mean_macro_f1=statistics.fmean(f1s) if f1s else None, n_macro_f1=len(f1s),
                                        mean_hf=statistics.fmean(hfs) if hfs else None, n_hf=len(hfs),
                                        mean_accuracy=statistics.fmean(accs) if accs else None,
                                        mean_unassigned_share=statistics.fmean(unassigned) if unassigned else None,
                                        n_missing=failed, complete=len(f1s) == n_queries)
    peer_means = [(v["mean_macro_f1"], m) for m, v in summary["means"].items()
                  if m in PEERS and v["mean_macro_f1"] is not None and v["complete"]]
    summary["best_peer"] = max(peer_means)[1] if peer_means else None
    # per-query best peer, averaged
    best_f1, best_hf = [], []
    for ref in report["references"].values():
        for q in ref["queries"].values():
            rows = [q["methods"][m] for m in PEERS if "macro_f1" in q["methods"].get(m, {})]
            if rows:
                best_f1.append(max(r["macro_f1"] for r in rows))
                hf = [r["hierarchical_f"] for r in rows if "hierarchical_f" in r]
                if hf:
                    best_hf.append(max(hf))
    summary["per_query_best_peer"] = dict(mean_macro_f1=statistics.fmean(best_f1) if best_f1 else None,
                                          mean_hf=statistics.fmean(best_hf) if best_hf else None, n=len(best_f1))
    # the two specific checks
    p3 = report["references"].get("pbmc3k", {}).get("queries", {})
    for qname, q in p3.items():
        if q["truth_dataset"] == "savercat-pbmc-3tech":
            summary["checks"]["pbmc3k_to_savercat_coarse_accuracy"] = {
                m: dict(corrected_accuracy=r.get("corrected_accuracy"), all_cells=r.get("coarse_accuracy_all_cells"))
                for m, r in q["methods"].items() if "macro_f1" in r}
        if q["truth_dataset"] == "pbmc68k_reduced":
            summary["checks"]["pbmc3k_to_pbmc68k_cd19_b_as_b"] = {
                m: r.get("cd19_b_predicted_b") for m, r in q["methods"].items() if "macro_f1" in r}
    return summary


def fmt(v, spec=".3f"):
    return "" if v is None else format(v, spec)


def markdown(report):
    s = report["summary"]
    src, binary, machine = report["celltyper_source"], report["celltyper_binary"], report["machine"]
    methods = methods_in(report)
    lines = ["# Gene-panel benchmark: one model, queries measuring other genes", "",
             f"Results from celltyper source commit `{src['commit'][:12]}` ({src['commit_date']})"
             + (f", with uncommitted changes in {len(src['uncommitted_source_changes'])} source file(s)" if src["uncommitted_source_changes"] else "")
             + f"; binary {binary['version']} built {binary['modified_utc']}. These figures are re-run whenever the default model changes.",
             "",
             f"Machine: {machine['platform']}, {machine.get('cpu', '?')}, {machine['cpus']} cores, {machine.get('memory_gb', '?')} GB "
             f"(load at start {machine['load_at_start'][0]:.1f}); total wall {report['wall_seconds']:.0f} s"
             + (" (`--quick`)" if report["quick"] else "") + ". Reproduce: `/usr/bin/python3 bench/panels/run.py`.", "",
             f"Default configuration (`celltyper train --help`): classifier `{report['train_help_defaults'].get('--classifier', '?')}`, "
             f"features `{report['train_help_defaults'].get('--features', '?')}`; annotate `--min-score {report['annotate_help_defaults'].get('--min-score', '?')}` "
             "(cells below it are Unassigned and count as wrong). "
             f"reference-mode (`annotate --reference`): {'available' if report['reference_mode_available'] else 'not available in this binary'}. "
             f"Peers: {', '.join(report['peers']) or 'skipped'} (XGBoost {report['xgboost_rounds']} rounds).", "",
             "Rows: **default** = `train` with no flags, once per reference, then `annotate` per query; **oracle** = `train --restrict-genes QUERY` "
             "per query; **reference-mode** = `annotate --reference REF` (trains on the fly); peers are trained on the reference restricted to the genes "
             "they share with the query. Metrics from `celltyper evaluate` on CL terms (labels for cellbench): macro-F1 over truth and predicted classes; "
             "hF = hierarchical F."
             + (f" **ensemble** = a second model (`train {report['ensemble_args']}`), once per reference, and `annotate --model DEFAULT --model SECOND` "
                "(probabilities averaged); its seconds are both trainings plus annotate." if report.get("ensemble_args") else "")
             + (f" Default and oracle trained with `{report['train_args']}`." if report.get("train_args") else ""), ""]
    # gaps
    lines += ["## default - oracle per query (goal: within 0.02 on every panel)", "",
              "| reference | query | default macro-F1 | oracle macro-F1 | gap | default hF | oracle hF | gap | within 0.02 |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for g in s["gaps"]:
        lines.append(f"| {g['reference']} | {g['query']} | {g['macro_f1_default']:.3f} | {g['macro_f1_oracle']:.3f} | {g['macro_f1_gap']:+.3f} | "
                     f"{fmt(g.get('hf_default'))} | {fmt(g.get('hf_oracle'))} | {fmt(g.get('hf_gap'), '+.3f')} | {'yes' if g['within_0.02'] else '**no**'} |")
    n_ok = sum(g["within_0.02"] for g in s["gaps"])
    lines += ["", f"{n_ok} of {len(s['gaps'])} queries within 0.02 of the oracle on macro-F1.", ""]
    # means
    lines += ["## Means over all queries", "",
              "| method | mean macro-F1 | queries | mean hF | queries (with CL ids) | mean accuracy | mean share Unassigned | missing rows |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m, v in s["means"].items():
        tag = " (best peer)" if m == s.get("best_peer") else ""
        lines.append(f"| {m}{tag} | {fmt(v['mean_macro_f1'])} | {v['n_macro_f1']} | {fmt(v['mean_hf'])} | {v['n_hf']} | "
                     f"{fmt(v.get('mean_accuracy'))} | {fmt(v.get('mean_unassigned_share'))} | {v['n_missing']} |")
    pq = s["per_query_best_peer"]
    if pq["n"]:
        lines.append(f"| best peer of each query | {fmt(pq['mean_macro_f1'])} | {pq['n']} | {fmt(pq['mean_hf'])} | | | | |")
    example = ""
    few = [(r["accuracy"] - r["macro_f1"], rname, qname, r) for rname, ref in report["references"].items()
           for qname, q in ref["queries"].items() for r in [q["methods"].get("default", {})]
           if "macro_f1" in r and 0 < (r.get("n_unassigned") or 0) <= 0.01 * q["n_cells"]]
    if few:
        _, rname, qname, r = max(few, key=lambda x: x[0])
        example = (f" Here: {rname} -> {qname}, {r['n_unassigned']} Unassigned cell(s), accuracy {r['accuracy']:.3f}, "
                   f"macro-F1 {r['macro_f1']:.3f}.")
    lines += ["", "Best peer = the peer with the highest mean macro-F1 among those that ran on every query. "
              "Peers always name a class; celltyper leaves cells below `--min-score` Unassigned, and `evaluate` averages macro-F1 over the "
              "truth and predicted classes, `(no prediction)` included: a single Unassigned cell in a 4-class query adds a fifth class "
              "with F1 0." + example + " Read accuracy and hF alongside macro-F1.", ""]
    # checks
    checks = s["checks"]
    lines += ["## Specific checks", ""]
    if "pbmc3k_to_savercat_coarse_accuracy" in checks:
        lines += ["pbmc3k -> savercat, coarse accuracy (truth B cells / Monocytes / T/NK cells = B cell / monocyte / lymphocyte; a prediction at or "
                  "below the truth term counts as correct, for T/NK cells lymphocyte itself or a term at or below T cell or NK cell): "
                  "`evaluate`'s corrected accuracy (over cells with a prediction) and over all cells (Unassigned = wrong).", "", "| method | corrected accuracy | all cells |", "|---|---:|---:|"]
        for m, v in checks["pbmc3k_to_savercat_coarse_accuracy"].items():
            lines.append(f"| {m} | {fmt(v['corrected_accuracy'])} | {fmt(v['all_cells'])} |")
        lines.append("")
    if "pbmc3k_to_pbmc68k_cd19_b_as_b" in checks:
        lines += ["pbmc3k -> pbmc68k_reduced counts: share of the cells with bulk label `CD19+ B` predicted B cell (CL:0000236 or below).", "",
                  "| method | CD19+ B -> B |", "|---|---:|"]
        for m, v in checks["pbmc3k_to_pbmc68k_cd19_b_as_b"].items():
            lines.append(f"| {m} | {fmt(v)} |")
        lines.append("")
    # per reference
    for rname, ref in report["references"].items():
        dm = ref.get("default_model", {})
        prov = dm.get("provenance", {})
        lines += [f"## {rname}: {ref['description']}", "",
                  f"{ref['n_train_cells']} training cells x {ref['n_genes']} genes; classes: {', '.join(ref['classes'])}. "
                  + (f"Default model: features `{prov.get('features', dm.get('features'))}`, classifier `{prov.get('classifier')}`, "
                     f"trained in {dm['train_seconds']:.1f} s (validation macro-F1 {fmt((dm.get('validation') or {}).get('macro_f1'))})."
                     if "train_seconds" in dm else f"Default model failed: {dm.get('error')}"), ""]
        metric = "macro-F1 / hF" if ref["ontology"] else "macro-F1"
        lines += [f"Cells: {metric}.", "", "| query | cells x genes | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
        for qname, q in ref["queries"].items():
            cells = []
            for m in methods:
                r = q["methods"].get(m)
                if r is None:
                    cells.append("")
                elif "macro_f1" not in r:
                    cells.append("n/a" if "not available" in r.get("error", "") else "failed")
                else:
                    text = f"{r['macro_f1']:.3f}" + (f" / {r['hierarchical_f']:.3f}" if "hierarchical_f" in r else "")
                    if r.get("refused_low_coverage"):
                        text += " (r)"
                    cells.append(text)
            lines.append(f"| {qname} | {q['n_cells']} x {q['n_genes']} | " + " | ".join(cells) + " |")
        lines += ["", "Wall seconds, train + annotate (default: its one training on the reference, repeated on every row; "
                  "reference-mode trains inside annotate; R peers: train and predict together):", "",
                  "| query | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for qname, q in ref["queries"].items():
            cells = []
            for m in methods:
                r = q["methods"].get(m, {})
                if "macro_f1" in r:
                    t = (r.get("train_seconds") or 0) + (r.get("annotate_seconds") or 0)
                    cells.append(f"{r.get('train_seconds') or 0:.1f} + {r.get('annotate_seconds') or 0:.1f}")
                else:
                    cells.append("")
            lines.append(f"| {qname} | " + " | ".join(cells) + " |")
        errors = [(qname, m, r["error"]) for qname, q in ref["queries"].items() for m, r in q["methods"].items()
                  if "error" in r and "not available" not in r["error"]]
        refused = [(qname, m) for qname, q in ref["queries"].items() for m, r in q["methods"].items() if r.get("refused_low_coverage")]
        if errors:
            lines += ["", "Failures:"] + [f"- {qname}, {m}: `{e[:200]}`" for qname, m, e in errors]
        if refused:
            lines += ["", "(r) = annotate refused the query for low coverage and was rerun with `--allow-low-coverage`: "
                      + "; ".join(f"{q} ({m})" for q, m in refused)]
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
