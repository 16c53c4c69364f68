#!/usr/bin/python3
"""Labels with default flags on a file joined from samples that measured different genes.

`anndata.concat(join="outer")` of a whole-transcriptome sample and a targeted panel, or a
CELLxGENE Census query over datasets, holds every gene for every cell: the panel's cells carry
zeros for the genes their technology never measured. Read as one panel, those zeros are absent
expression. `celltyper annotate` tells the samples by a categorical obs column (default: any of
2-64 levels; `--group obs:COLUMN` names it, `--group none` reads the file as one panel) and
annotates a padded sample on the genes it measured.

Two joins of real cells (../shared/data), each annotated by a model trained on other cells:

  * pancreas   Xin (SMARTer, 980 genes measured) and Wang (Fluidigm C1, 219 genes) as the shared
               file holds them (obs `study`): a model trained on a stratified 70% of Xin,
               annotating the other 30% of Xin joined with every Wang cell;
  * pbmc       pbmc68k_reduced's 765-gene counts joined to every 9th pbmc3k cell (obs `sample`):
               a model trained on pbmc3k (every cell; the pbmc3k part is no held-out test here,
               the pbmc68k part is).

Rows per join: default `annotate`; `--group none` (the file as one panel: the behaviour before
this bench's session); and each sample annotated from a file of its own genes only (the figure
the joined file should reproduce). Metric: accuracy on the padded sample's cells (pancreas:
labels as given; pbmc68k_reduced: CL ids of the bulk labels and the model's classes through the
label map, exact match), and the share of the other sample's labels left unchanged.

    /usr/bin/python3 bench/annotate/joined_panels.py [--build build]

Writes bench/results/joined_panels.{json,md}.
"""
import argparse
import json
import os
import shutil
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
PANCREAS = os.path.join(SHARED, "pancreas-xin-wang-scclassify", "pancreas_xin_wang_log.h5ad")
PBMC3K = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
PBMC68K = os.path.join(SHARED, "pbmc68k_reduced", "pbmc68k_reduced_with_counts.h5ad")


def log(message):
    print(f"[joined_panels] {message}", file=sys.stderr, flush=True)


def run(command):
    return measure.run_timed(command, "bench/annotate/joined_panels")[1]


def label_map(dataset):
    table = pd.read_csv(LABEL_MAP, sep="\t")
    return dict(zip(table[table["dataset"] == dataset]["label"].astype(str), table[table["dataset"] == dataset]["cl_id"].astype(str)))


def pancreas(workdir):
    """Training file, joined query, each sample alone; truth per query cell; the padded sample."""
    a = anndata.read_h5ad(PANCREAS)
    rng = np.random.default_rng(0)
    xin = np.where(a.obs["study"].astype(str) == "Xin2016_SMARTer")[0]
    wang = np.where(a.obs["study"].astype(str) != "Xin2016_SMARTer")[0]
    train, test = [], []
    for label in sorted(set(a.obs["celltype"].astype(str)[xin])):  # stratified 70 / 30
        rows = xin[a.obs["celltype"].astype(str).to_numpy()[xin] == label]
        rows = rows[rng.permutation(len(rows))]
        cut = int(round(0.7 * len(rows)))
        train += list(rows[:cut])
        test += list(rows[cut:])
    train, test = np.sort(train), np.sort(test)
    paths = {name: os.path.join(workdir, f"pancreas_{name}.h5ad") for name in ("train", "joined", "whole", "panel")}
    a[train].write_h5ad(paths["train"])
    joined = a[np.concatenate([test, wang])].copy()
    joined.write_h5ad(paths["joined"])
    a[test].write_h5ad(paths["whole"])
    a[wang][:, a.var["in_wang_subset"].to_numpy()].copy().write_h5ad(paths["panel"])
    truth = joined.obs["celltype"].astype(str).to_numpy()
    padded = (joined.obs["study"].astype(str) != "Xin2016_SMARTer").to_numpy()
    return dict(paths=paths, train_label="obs:celltype", truth=truth, padded=padded, translate=lambda labels: labels,
                column="study", n_genes=(int(a.n_vars), int(a.var["in_wang_subset"].sum())))


def pbmc(workdir):
    r = anndata.read_h5ad(PBMC3K)
    q = anndata.read_h5ad(PBMC68K)
    own = anndata.AnnData(sp.csr_matrix(q.layers["counts"], dtype=np.float32), obs=pd.DataFrame(index=[f"q{i}" for i in range(q.n_obs)]),
                          var=pd.DataFrame(index=list(q.var_names)))
    part = r[np.arange(0, r.n_obs, 9)]
    whole = anndata.AnnData(sp.csr_matrix(part.X, dtype=np.float32), obs=pd.DataFrame(index=[f"r{i}" for i in range(part.n_obs)]),
                            var=pd.DataFrame(index=list(part.var_names)))
    joined = anndata.concat({"pbmc3k": whole, "pbmc68k": own}, join="outer", label="sample")
    joined.X = sp.csr_matrix(joined.X, dtype=np.float32)
    paths = {name: os.path.join(workdir, f"pbmc_{name}.h5ad") for name in ("joined", "whole", "panel")}
    paths["train"] = PBMC3K
    joined.write_h5ad(paths["joined"])
    whole.write_h5ad(paths["whole"])
    own.write_h5ad(paths["panel"])
    pbmc68k_ids = label_map("pbmc68k_reduced")
    pbmc3k_ids = label_map("pbmc3k-seurat-labels")
    truth = [pbmc68k_ids.get(str(label), "?") for label in q.obs["bulk_labels"]] + [pbmc3k_ids.get(str(label), "?") for label in part.obs["celltype"]]
    truth_by_name = dict(zip([f"q{i}" for i in range(q.n_obs)] + [f"r{i}" for i in range(part.n_obs)], truth))
    truth = np.array([truth_by_name[name] for name in joined.obs_names], dtype=object)
    padded = (joined.obs["sample"].astype(str) == "pbmc68k").to_numpy()
    return dict(paths=paths, train_label="obs:celltype", truth=truth, padded=padded,
                translate=lambda labels: np.array([pbmc3k_ids.get(str(label), str(label)) for label in labels], dtype=object),
                column="sample", n_genes=(int(joined.n_vars), int(q.n_vars)))


def labels_of(path, names):
    obs = anndata.read_h5ad(path, backed="r").obs
    return obs["celltyper_label"].astype(str).reindex(names).to_numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "joined_panels"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    for path in (celltyper, PANCREAS, PBMC3K, PBMC68K, LABEL_MAP):
        if not os.path.exists(path):
            sys.exit(f"bench/annotate/joined_panels: {path} is missing")
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="celltyper-joined-")
    report = dict(command="/usr/bin/python3 bench/annotate/joined_panels.py " + " ".join(sys.argv[1:]), commit=measure.git_commit(ROOT),
                  machine=f"{os.cpu_count()} cores", joins={})
    for name, make in (("pancreas", pancreas), ("pbmc", pbmc)):
        log(name)
        setup = make(workdir)
        paths = setup["paths"]
        model = os.path.join(workdir, f"{name}.model")
        run([celltyper, "train", "-r", paths["train"], "-l", setup["train_label"], "-o", model, "-q"])
        names = list(anndata.read_h5ad(paths["joined"], backed="r").obs_names)
        rows = {}
        for row, flags in (("default", []), ("--group none", ["--group", "none"])):
            out = os.path.join(workdir, f"{name}_{row.replace(' ', '_').replace('-', '')}.h5ad")
            seconds = run([celltyper, "annotate", "-m", model, "-i", paths["joined"], "-o", out, "-q"] + flags)
            rows[row] = (labels_of(out, names), seconds)
        alone = {}
        seconds = 0.0
        for part in ("whole", "panel"):
            out = os.path.join(workdir, f"{name}_{part}_alone.h5ad")
            seconds += run([celltyper, "annotate", "-m", model, "-i", paths[part], "-o", out, "-q"])
            obs = anndata.read_h5ad(out, backed="r").obs
            alone.update(zip(obs.index.astype(str), obs["celltyper_label"].astype(str)))
        rows["each sample from its own genes"] = (np.array([alone[n] for n in names], dtype=object), seconds)
        truth, padded = setup["truth"], setup["padded"]
        reference_labels = rows["--group none"][0]
        results = {}
        for row, (labels, seconds) in rows.items():
            predicted = setup["translate"](labels)
            results[row] = dict(padded_accuracy=float(np.mean(predicted[padded] == truth[padded])),
                                other_accuracy=float(np.mean(predicted[~padded] == truth[~padded])),
                                other_unchanged=float(np.mean(labels[~padded] == reference_labels[~padded])),
                                padded_same_as_own_genes=float(np.mean(labels[padded] == rows["each sample from its own genes"][0][padded])),
                                seconds=seconds)
            log(f"  {row}: padded sample {results[row]['padded_accuracy']:.3f}, other {results[row]['other_accuracy']:.3f}")
        report["joins"][name] = dict(column=setup["column"], n_cells=len(names), n_padded=int(padded.sum()),
                                     genes=dict(joined=setup["n_genes"][0], padded_sample=setup["n_genes"][1]), results=results)
    report["seconds"] = time.perf_counter() - started
    shutil.rmtree(workdir, ignore_errors=True)
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    lines = ["# Files joined from samples that measured different genes (bench/annotate/joined_panels.py)", "",
             f"Command: `{report['command']}`; celltyper {report['commit']}; {report['seconds']:.0f} s on {report['machine']}.", "",
             "Accuracy on the padded sample's cells and on the other sample's; the share of each cell's labels equal to those of "
             "the sample annotated from a file of its own genes (padded sample) or to the one-panel reading (other sample).", ""]
    for name, join in report["joins"].items():
        lines += [f"## {name}: {join['n_cells']} cells, {join['n_padded']} in the padded sample ({join['genes']['padded_sample']} of "
                  f"{join['genes']['joined']} genes measured; samples in obs '{join['column']}')", "",
                  "| annotate | padded sample accuracy | other sample accuracy | padded: as from its own genes | other: unchanged | seconds |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row, r in join["results"].items():
            lines.append(f"| {row} | {r['padded_accuracy']:.3f} | {r['other_accuracy']:.3f} | {r['padded_same_as_own_genes']:.3f} | "
                         f"{r['other_unchanged']:.3f} | {r['seconds']:.1f} |")
        lines.append("")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
