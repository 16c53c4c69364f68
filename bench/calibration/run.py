#!/usr/bin/python3
"""How well `celltyper_score` says how often a label is right: calibrated scores (the power `train`
fits on its validation cells, provenance `calibration`) against the classifier's raw probabilities
(the same model's, the power undone: p^(1/power), renormalised), on query cells of the types the
reference knows, and what the score says of cells of types it lacks.

Every model is `celltyper train` with default settings; every query is `celltyper annotate` with
default settings (flat labels).

    /usr/bin/python3 bench/calibration/run.py [--build build] [--out bench/results/calibration]

Writes OUT.json and OUT.md.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import anndata
import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def pairs(work):
    """(name, reference path, query path, label column) over ../shared/data."""
    p3 = anndata.read_h5ad(os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad"))
    p3[0::2].copy().write_h5ad(os.path.join(work, "pbmc3k_even.h5ad"))
    p3[1::2].copy().write_h5ad(os.path.join(work, "pbmc3k_odd.h5ad"))
    s = anndata.read_h5ad(os.path.join(SHARED, "savercat-pbmc-3tech", "pbmc_prep_3tech.h5ad"))
    vdj = (s.obs["tech"].astype(str) == "VDJ").values
    s[~vdj].copy().write_h5ad(os.path.join(work, "savercat_v2_v3.h5ad"))
    s[vdj].copy().write_h5ad(os.path.join(work, "savercat_vdj.h5ad"))
    p = anndata.read_h5ad(os.path.join(SHARED, "pancreas-xin-wang-scclassify", "pancreas_xin_wang_log.h5ad"))
    study = p.obs["study"].astype(str).str.lower().values
    p[np.char.startswith(study.astype(str), "xin")].copy().write_h5ad(os.path.join(work, "xin.h5ad"))
    wang = p[np.char.startswith(study.astype(str), "wang")]
    wang[:, p.var["in_wang_subset"].astype(bool).values].copy().write_h5ad(os.path.join(work, "wang.h5ad"))
    c = anndata.read_h5ad(os.path.join(SHARED, "cellbench-mixology", "cellbench_3cl_celseq2_dropseq.h5ad"))
    single = (c.obs["demuxlet_cls"].astype(str) == "SNG").values
    tech = c.obs["technology"].astype(str).values
    c[single & (tech == "CEL-seq2")].copy().write_h5ad(os.path.join(work, "celseq2.h5ad"))
    c[single & (tech == "Drop-seq")].copy().write_h5ad(os.path.join(work, "dropseq.h5ad"))
    return [("pbmc3k even cells -> odd cells", "pbmc3k_even", "pbmc3k_odd", "celltype"),
            ("savercat 10x V2 + V3 -> 5' VDJ", "savercat_v2_v3", "savercat_vdj", "celltype"),
            ("pancreas Xin -> Wang (219 genes)", "xin", "wang", "celltype"),
            ("cell lines CEL-seq2 -> Drop-seq", "celseq2", "dropseq", "cell_line_demuxlet")]


def summary(scores, right):
    """Mean score, accuracy, expected calibration error (10 bins), share below 0.5 and how many of those are right."""
    bins = np.linspace(0, 1, 11)
    ece = 0.0
    for low, high in zip(bins[:-1], bins[1:]):
        inside = (scores > low) & (scores <= high)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - scores[inside].mean())
    below = scores < 0.5
    return {"mean_score": float(scores.mean()), "accuracy": float(right.mean()), "ece": float(ece), "share_below_0.5": float(below.mean()),
            "right_below_0.5": float(right[below].mean()) if below.any() else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "calibration"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="celltyper-calibration-") as work:
        for name, reference, query, label in pairs(work):
            model = os.path.join(work, reference + ".h5")
            out = os.path.join(work, query + ".out.h5ad")
            subprocess.run([celltyper, "train", "-r", os.path.join(work, reference + ".h5ad"), "-l", "obs:" + label, "-o", model, "-q"],
                           check=True, capture_output=True)
            subprocess.run([celltyper, "annotate", "-m", model, "-i", os.path.join(work, query + ".h5ad"), "-o", out, "-q"], check=True,
                           capture_output=True)
            with h5py.File(model, "r") as handle:
                calibration = json.loads(handle.attrs["provenance_json"]).get("calibration", {})
            power = calibration.get("power", 1.0)
            annotated = anndata.read_h5ad(out)
            classes = [str(c) for c in annotated.uns["celltyper_probability_classes"]]
            calibrated = np.asarray(annotated.obsm["celltyper_probabilities"], dtype=np.float64)
            raw = np.where(calibrated > 0, calibrated, 0.0) ** (1.0 / power)
            raw /= np.maximum(raw.sum(axis=1, keepdims=True), 1e-300)
            truth = annotated.obs[label].astype(str).values
            known = np.isin(truth, classes)
            labels = np.array(classes)[calibrated.argmax(axis=1)]
            right = (labels == truth)[known]
            row = {"pair": name, "power": power, "n_cells": int(known.sum()),
                   "raw": summary(raw.max(axis=1)[known], right), "calibrated": summary(calibrated.max(axis=1)[known], right)}
            if (~known).any():
                unlike = annotated.obs["celltyper_unlike_reference"].values.astype(bool)[~known]
                row["unknown_types"] = {"n_cells": int((~known).sum()), "types": sorted(set(truth[~known])),
                                        "raw_below_0.5": float((raw.max(axis=1)[~known] < 0.5).mean()),
                                        "calibrated_below_0.5": float((calibrated.max(axis=1)[~known] < 0.5).mean()),
                                        "unlike_reference": float(unlike.mean())}
            rows.append(row)
            print(f"[calibration] {name}: power {power:.2f}, accuracy {row['calibrated']['accuracy']:.3f}, mean score "
                  f"{row['raw']['mean_score']:.3f} raw -> {row['calibrated']['mean_score']:.3f}, ECE {row['raw']['ece']:.3f} -> "
                  f"{row['calibrated']['ece']:.3f}", flush=True)
    result = {"celltyper": celltyper, "wall_seconds": time.time() - started, "rows": rows}
    with open(args.out + ".json", "w") as handle:
        json.dump(result, handle, indent=1)
    lines = ["# Calibrated scores", "",
             "`celltyper train` / `annotate` defaults; raw = the same model's probabilities with the calibration power undone. "
             f"Reproduce: `/usr/bin/python3 bench/calibration/run.py` ({result['wall_seconds']:.0f} s). Cells of the reference's types:", "",
             "| reference -> query | power | cells | accuracy | mean score raw | calibrated | ECE raw | calibrated | below 0.5 raw (right) | calibrated (right) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt_right = lambda value: "-" if value is None else f"{value:.2f}"
    for row in rows:
        raw, cal = row["raw"], row["calibrated"]
        lines.append(f"| {row['pair']} | {row['power']:.2f} | {row['n_cells']} | {cal['accuracy']:.3f} | {raw['mean_score']:.3f} | "
                     f"{cal['mean_score']:.3f} | {raw['ece']:.3f} | {cal['ece']:.3f} | {100 * raw['share_below_0.5']:.1f}% ({fmt_right(raw['right_below_0.5'])}) | "
                     f"{100 * cal['share_below_0.5']:.1f}% ({fmt_right(cal['right_below_0.5'])}) |")
    lines += ["", "Cells of types the reference lacks:", "", "| reference -> query | cells (types) | below 0.5 raw | calibrated | flagged unlike every reference type |",
              "|---|---|---:|---:|---:|"]
    for row in rows:
        if "unknown_types" in row:
            u = row["unknown_types"]
            lines.append(f"| {row['pair']} | {u['n_cells']} ({', '.join(u['types'])}) | {100 * u['raw_below_0.5']:.0f}% | "
                         f"{100 * u['calibrated_below_0.5']:.0f}% | {100 * u['unlike_reference']:.0f}% |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
