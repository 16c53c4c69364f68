#!/usr/bin/python3
"""Score calibration of the default model across datasets: bench/panels' 26 queries (references
pbmc3k, savercat, pancreas, cellbench; cross-dataset queries and held-out cells on fewer genes),
each annotated by `celltyper train` with default settings, which calibrates the scores (a
temperature fitted on its validation cells), and by the same training with `--no-calibrate` (the
classifier's own probabilities), in one run.

Per query, over the cells whose truth is one of the model's classes (the reference's own labels;
across datasets, the same Cell Ontology term through ../shared/data's label map): accuracy of the
top class, mean top probability, expected calibration error (15 equal-width bins, as `celltyper
evaluate`), log loss (probability clipped at 1e-15) and the share of right calls scoring below 0.5
(what `--min-score 0.5` would leave Unassigned). Labels are the same in both runs (checked).

    /usr/bin/python3 bench/calibration/run.py [--build build] [--out bench/results/calibration]

Writes OUT.json and OUT.md.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import anndata
import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
LABEL_MAP = os.path.join(SHARED, "label_map_to_cell_ontology.tsv")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

BINS = 15


def log(message):
    print(f"[calibration] {message}", file=sys.stderr, flush=True)


def ece(confidence, right):
    bins = np.minimum(BINS - 1, np.maximum(0, np.ceil(confidence * BINS - 1e-6) - 1)).astype(int)
    total = 0.0
    for b in range(BINS):
        inside = bins == b
        if inside.any():
            total += inside.sum() / len(confidence) * abs(confidence[inside].mean() - right[inside].mean())
    return total


def run_panels(build, train_args, out):
    """bench/panels/run.py --default-only (its default rows), keeping its working folder."""
    command = [sys.executable, os.path.join(ROOT, "bench", "panels", "run.py"), "--build", build, "--default-only", "--skip-peers",
               "--keep", "--out", out]
    if train_args:
        command.append(f"--train-args={train_args}")
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"bench/panels failed ({' '.join(command)}):\n{run.stderr[-3000:]}")
    kept = re.findall(r"kept (\S+)", run.stderr)
    if not kept:
        sys.exit("bench/panels did not say where it kept its files")
    with open(out + ".json") as f:
        return json.load(f), kept[-1]


def query_figures(report, workdir, label_map):
    rows = []
    for ref, info in report["references"].items():
        dataset = info["label_dataset"]
        for qi, (qname, query) in enumerate(info["queries"].items()):
            annotated = anndata.read_h5ad(os.path.join(workdir, ref, f"q{qi}_default.h5ad"))
            cells = anndata.read_h5ad(os.path.join(workdir, ref, f"query{qi}.h5ad"), backed="r")
            truth = cells.obs["truth"].astype(str).to_numpy()
            p = np.asarray(annotated.obsm["celltyper_probabilities"], dtype=float)
            names = list(annotated.uns["celltyper_probability_classes"])
            ids = list(annotated.uns.get("celltyper_probability_cl_ids", [""] * len(names)))
            if query["truth_dataset"] == dataset or not dataset:
                key, to_key = names, {n: n for n in names}
            else:  # across datasets: the same Cell Ontology term
                rows_of = label_map[label_map["dataset"] == query["truth_dataset"]]
                key, to_key = ids, dict(zip(rows_of["label"], rows_of["cl_id"]))
            truth_key = np.array([to_key.get(t, "?") for t in truth])
            keep = np.isin(truth_key, key) & (p.sum(axis=1) > 0.5)
            y = np.array([key.index(t) for t in truth_key[keep]])
            p = p[keep]
            top = p.max(axis=1)
            right = p.argmax(axis=1) == y
            rows.append(dict(reference=ref, query=qname, kind=query["kind"], n_cells=int(len(y)), accuracy=float(right.mean()),
                             mean_score=float(top.mean()), ece=float(ece(top, right)),
                             log_loss=float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, None)))),
                             right_below_half=float((right & (top < 0.5)).sum() / max(1, right.sum())),
                             labels=annotated.obs["celltyper_label"].astype(str).tolist()))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "calibration"))
    args = parser.parse_args()
    started = time.time()
    label_map = pd.read_csv(LABEL_MAP, sep="\t")
    figures = {}
    for name, train_args in (("uncalibrated (--no-calibrate)", "--no-calibrate"), ("default (calibrated)", "")):
        log(f"bench/panels, train {train_args or '(defaults)'}")
        scratch = args.out + (".panels_uncalibrated" if train_args else ".panels_default")
        report, workdir = run_panels(args.build, train_args, scratch)
        figures[name] = query_figures(report, workdir, label_map)
        figures[name + ":models"] = {ref: info.get("default_model", {}).get("provenance", {}).get("calibration")
                                     for ref, info in report["references"].items()}
        shutil.rmtree(workdir, ignore_errors=True)
        for suffix in (".json", ".md"):
            if os.path.exists(scratch + suffix):
                os.remove(scratch + suffix)
    before, after = figures["uncalibrated (--no-calibrate)"], figures["default (calibrated)"]
    for b, a in zip(before, after):
        assert (b["reference"], b["query"]) == (a["reference"], a["query"])
        if b.pop("labels") != a.pop("labels"):
            sys.exit(f"labels differ with calibration: {a['reference']} -> {a['query']}")
    result = dict(command="/usr/bin/python3 bench/calibration/run.py", celltyper_source=measure.git_commit(ROOT),
                  build=os.path.abspath(args.build), wall_seconds=round(time.time() - started, 1), bins=BINS,
                  queries=[dict(reference=b["reference"], query=b["query"], kind=b["kind"], n_cells=b["n_cells"], accuracy=b["accuracy"],
                                uncalibrated={k: b[k] for k in ("mean_score", "ece", "log_loss", "right_below_half")},
                                default={k: a[k] for k in ("mean_score", "ece", "log_loss", "right_below_half")}) for b, a in zip(before, after)])
    summary = {}
    for which in ("uncalibrated", "default"):
        for metric in ("ece", "log_loss", "right_below_half", "mean_score"):
            values = [q[which][metric] for q in result["queries"]]
            summary[f"{which}_{metric}_median"] = statistics.median(values)
            summary[f"{which}_{metric}_mean"] = statistics.fmean(values)
    summary["n_queries"] = len(result["queries"])
    result["default_models_calibration"] = figures["default (calibrated):models"]
    summary["ece_lower"] = sum(q["default"]["ece"] < q["uncalibrated"]["ece"] for q in result["queries"])
    summary["log_loss_lower"] = sum(q["default"]["log_loss"] < q["uncalibrated"]["log_loss"] for q in result["queries"])
    result["summary"] = summary
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    lines = ["# Score calibration of the default model (bench/calibration)", "",
             f"Command: `{result['command']}`; celltyper {result['celltyper_source']}; {result['wall_seconds']:.0f} s on this machine.", "",
             "bench/panels' queries annotated by `celltyper train` with default settings (scores calibrated: a temperature fitted on "
             "its validation cells) and with `--no-calibrate` (the classifier's own probabilities), in the same run; labels identical. "
             "Over the cells whose truth is a class of the model: accuracy, mean top score, expected calibration error (ECE, 15 bins), "
             "log loss, and the share of right calls scoring below 0.5.", "",
             "Temperatures fitted (default models): " + ", ".join(
                 f"{ref} {c['temperature']:.3g} from {c.get('n_cells', 0)} validation cells" + (" (bound by their accuracy)" if c.get("bounded_by_accuracy") else "")
                 for ref, c in result["default_models_calibration"].items() if c) + ".", "",
             "| reference | query | cells | accuracy | mean score | ECE | log loss | right calls below 0.5 |",
             "|---|---|---|---|---|---|---|---|"]
    for q in result["queries"]:
        u, d = q["uncalibrated"], q["default"]
        lines.append(f"| {q['reference']} | {q['query']} | {q['n_cells']} | {q['accuracy']:.3f} | {u['mean_score']:.3f} -> {d['mean_score']:.3f} | "
                     f"{u['ece']:.3f} -> {d['ece']:.3f} | {u['log_loss']:.3f} -> {d['log_loss']:.3f} | "
                     f"{u['right_below_half']:.3f} -> {d['right_below_half']:.3f} |")
    s = summary
    lines += ["", f"Over the {s['n_queries']} queries (uncalibrated -> default): median ECE {s['uncalibrated_ece_median']:.3f} -> "
              f"{s['default_ece_median']:.3f} (mean {s['uncalibrated_ece_mean']:.3f} -> {s['default_ece_mean']:.3f}), median log loss "
              f"{s['uncalibrated_log_loss_median']:.3f} -> {s['default_log_loss_median']:.3f} (mean {s['uncalibrated_log_loss_mean']:.3f} -> "
              f"{s['default_log_loss_mean']:.3f}); ECE lower on {s['ece_lower']}, log loss lower on {s['log_loss_lower']}; median share of "
              f"right calls below 0.5 {s['uncalibrated_right_below_half_median']:.3f} -> {s['default_right_below_half_median']:.3f}."]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
