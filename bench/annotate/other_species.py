"""Another species than the gene table's: default `celltyper train` then `annotate` on real labelled
cells whose genes are renamed to identifiers the default (human) gene table does not know (fly
FBgn numbers, zebrafish-style zgc: / si: names, Arabidopsis AT1G01010-style ids), against the same
cells under their original names, in the same run.

The counts are real (pbmc3k, the ACTINN mouse set, pancreas Xin -> Wang); only the names change,
by a fixed one-to-one map (seeded), so any difference in accuracy is the tool's handling of the
names. Reference and query: pbmc3k's even / odd cells, the mouse set's even / odd cells, pancreas
Xin -> Wang (Wang measured 219 genes). Query variants of the fly names: a version suffix ('.1'),
lower case, 60% of the genes. Zebrafish-like symbols that the human table half-knows (45% of the
genes keep their human symbol lower-cased, as one-to-one orthologs do, 25% get an 'a' / 'b'
paralog suffix, 30% clone names): by default (the table kept, the rest left out) and with
`train --own-gene-names`.

    /usr/bin/python3 bench/annotate/other_species.py [--build build] [--before DIR]

--before DIR runs a second binary (DIR/celltyper) on the same files, e.g. the session-start build:
its failures are reported as such. Writes bench/results/other_species.{json,md}.
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
    print(f"[other_species] {message}", file=sys.stderr, flush=True)


def read(relative):
    path = os.path.join(SHARED, relative)
    if not os.path.exists(path):
        sys.exit(f"bench/annotate/other_species: {path} is missing: this benchmark needs ../shared/data")
    return anndata.read_h5ad(path)


def names(style, n, seed):
    """n distinct identifiers in the style of another species' genes."""
    rng = np.random.default_rng(seed)
    if style == "fly":
        return [f"FBgn{x:07d}" for x in rng.choice(np.arange(1, 400000), n, replace=False)]
    if style == "zebrafish":
        numbers = rng.choice(np.arange(1000, 999999), n, replace=False)
        forms = ["zgc:{}", "si:ch211-{}", "si:dkey-{}", "im:{}"]
        return [forms[i % 4].format(x) for i, x in enumerate(numbers)]
    if style == "arabidopsis":
        return [f"AT{1 + x % 5}G{(x // 5) * 10:05d}" for x in rng.choice(np.arange(1, 90000), n, replace=False)]
    raise ValueError(style)


def zebrafish_symbols(symbols, seed):
    """Zebrafish-like names of human genes: 45% the symbol lower-cased (one-to-one orthologs), 25%
    with an 'a' / 'b' paralog suffix, 30% clone names (zgc: / si:)."""
    rng = np.random.default_rng(seed)
    clones = iter(names("zebrafish", len(symbols), seed + 1))
    out, seen = [], set()
    for symbol in symbols:
        draw = rng.random()
        name = symbol.lower() if draw < 0.45 else symbol.lower() + "ab"[int(rng.integers(2))] if draw < 0.70 else next(clones)
        while name.lower() in seen:
            name = next(clones)
        seen.add(name.lower())
        out.append(name)
    return out


def renamed(adata, style, seed):
    out = adata.copy()
    new = zebrafish_symbols(list(adata.var_names), seed) if style == "zebrafish symbols" else names(style, adata.n_vars, seed)
    assert len(set(new)) == adata.n_vars
    out.var = pd.DataFrame(index=new)
    return out


def prepare(workdir):
    """(scenario, style, reference path, query path, label column, extra train arguments) for every run."""
    runs = []

    def write(adata, name):
        path = os.path.join(workdir, name + ".h5ad")
        adata.write_h5ad(path)
        return path

    pbmc = read("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad")
    pbmc.obs = pbmc.obs[["celltype"]].copy()
    pbmc.var = pd.DataFrame(index=pbmc.var_names)
    mouse = read("actinn-tabula-muris-mouse/actinn_train_mouse.h5ad")
    mouse.var = pd.DataFrame(index=mouse.var_names)
    mouse_label = [c for c in ("cell_type", "celltype", "label") if c in mouse.obs.columns][0]
    mouse.obs = mouse.obs[[mouse_label]].copy()
    pancreas = read("pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad")
    pancreas_label = [c for c in pancreas.obs.columns if "type" in c.lower()][0]
    xin = pancreas.obs["study"].astype(str).str.startswith("Xin").values
    in_wang = pancreas.var["in_wang_subset"].values.astype(bool)

    sets = {"pbmc3k": (pbmc, "celltype", lambda a: a[0::2].copy(), lambda a: a[1::2].copy()),
            "mouse": (mouse, mouse_label, lambda a: a[0::2].copy(), lambda a: a[1::2].copy()),
            "pancreas Xin -> Wang": (pancreas, pancreas_label, lambda a: a[xin].copy(), lambda a: a[~xin][:, in_wang].copy())}
    styles = {"pbmc3k": ["fly", "zebrafish", "arabidopsis", "zebrafish symbols"], "mouse": ["arabidopsis"],
              "pancreas Xin -> Wang": ["zebrafish"]}
    for seed, (dataset, (adata, label, reference_of, query_of)) in enumerate(sets.items()):
        stem = dataset.split()[0]
        runs.append((dataset, "original names", write(reference_of(adata), f"{stem}_original_ref"),
                     write(query_of(adata), f"{stem}_original_query"), label, []))
        for style in styles[dataset]:
            other = renamed(adata, style, 100 + seed)
            file_stem = f"{stem}_{style.replace(' ', '_')}"
            reference = write(reference_of(other), f"{file_stem}_ref")
            query = query_of(other)
            described = style if style.endswith("symbols") else f"{style} ids"
            query_path = write(query, f"{file_stem}_query")
            runs.append((dataset, described, reference, query_path, label, []))
            if style == "zebrafish symbols":
                runs.append((dataset, f"{described}, train --own-gene-names", reference, query_path, label, ["--own-gene-names"]))
            if dataset == "pbmc3k" and style == "fly":
                suffixed = query.copy()
                suffixed.var = pd.DataFrame(index=[g + ".1" for g in query.var_names])
                runs.append((dataset, "fly ids, query with '.1' suffixes", reference, write(suffixed, "pbmc3k_fly_suffix_query"), label, []))
                lower = query.copy()
                lower.var = pd.DataFrame(index=[g.lower() for g in query.var_names])
                runs.append((dataset, "fly ids, query lower-case", reference, write(lower, "pbmc3k_fly_lower_query"), label, []))
                keep = np.random.default_rng(7).random(query.n_vars) < 0.6
                runs.append((dataset, "fly ids, query on 60% of the genes", reference, write(query[:, keep].copy(), "pbmc3k_fly_part_query"),
                             label, []))
    return runs


def run_one(binary, reference, query, label, workdir, tag, extra=()):
    model = os.path.join(workdir, f"{tag}.h5")
    out_csv = os.path.join(workdir, f"{tag}.csv")
    started = time.perf_counter()
    trained = subprocess.run([binary, "train", "-r", reference, "-l", f"obs:{label}", "-o", model, "--seed", "0", *extra], capture_output=True, text=True)
    if trained.returncode != 0:
        return {"error": "train: " + trained.stderr.strip().splitlines()[-1], "seconds": time.perf_counter() - started}
    annotated = subprocess.run([binary, "annotate", "-m", model, "-i", query, "--csv", out_csv], capture_output=True, text=True)
    if annotated.returncode != 0:
        return {"error": "annotate: " + annotated.stderr.strip().splitlines()[-1], "seconds": time.perf_counter() - started}
    labels = pd.read_csv(out_csv, index_col=0).iloc[:, 0].astype(str).values
    own_names = "own var names" in trained.stderr
    return {"labels": labels, "own_names": own_names, "seconds": time.perf_counter() - started}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", default=None, help="a second build folder (its celltyper) run on the same files")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "other_species"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or os.path.join("/tmp", f"other_species_bench_{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    runs = prepare(workdir)
    binaries = [("this build", os.path.join(args.build, "celltyper"))]
    if args.before:
        binaries.append(("before", os.path.join(args.before, "celltyper")))
    rows = []
    originals = {}
    for i, (dataset, names_as, reference, query, label, extra) in enumerate(runs):
        truth = anndata.read_h5ad(query, backed="r").obs[label].astype(str).values
        row = {"dataset": dataset, "names": names_as, "cells": int(len(truth))}
        for which, binary in binaries:
            result = run_one(binary, reference, query, label, workdir, f"run{i}_{which.replace(' ', '_')}", extra)
            entry = {"seconds": round(result["seconds"], 2)}
            if "error" in result:
                entry["error"] = result["error"]
            else:
                entry["accuracy"] = float((result["labels"] == truth).mean())
                entry["own_names"] = result["own_names"]
                if names_as == "original names":
                    originals[(dataset, which)] = result["labels"]
                elif (dataset, which) in originals:
                    entry["agreement_with_original"] = float((result["labels"] == originals[(dataset, which)]).mean())
            row[which] = entry
        log(f"{dataset}, {names_as}: " + "; ".join(
            f"{which} " + (f"accuracy {row[which]['accuracy']:.3f}" if "accuracy" in row[which] else row[which]["error"][:120]) for which, _ in binaries))
        rows.append(row)
    elapsed = time.time() - started
    with open(args.out + ".json", "w") as handle:
        json.dump({"commit": measure.git_commit(ROOT), "seconds": elapsed, "binaries": [w for w, _ in binaries], "rows": rows}, handle, indent=1)
    lines = ["# Another species than the gene table's (bench/annotate/other_species.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/other_species.py{' --before DIR' if args.before else ''}`; celltyper "
             f"{measure.git_commit(ROOT)}; {elapsed:.0f} s on {os.cpu_count()} cores. Default `train` and `annotate` (no flag: the "
             "default human gene table). Real counts, genes renamed by a fixed one-to-one map; accuracy = exact labels against the "
             "query's own; agreement = the same label as with the original names (same binary). own names = train said it trained "
             "on the references' own var names. A flag named in the gene-names column is the only one given (a binary without it "
             "fails).", ""]
    header = "| dataset | gene names | cells | " + " | ".join(f"{w}: accuracy | {w}: agreement | {w}: own names" for w, _ in binaries) + " |"
    lines += [header, "|" + "---|" * (3 + 3 * len(binaries))]
    for row in rows:
        cells = []
        for which, _ in binaries:
            entry = row[which]
            if "error" in entry:
                cells += [f"fails: {entry['error'][:140]}", "", ""]
            else:
                agreement = entry.get("agreement_with_original")
                cells += [f"{entry['accuracy']:.3f}", "" if agreement is None else f"{agreement:.3f}", "yes" if entry["own_names"] else "no"]
        lines.append(f"| {row['dataset']} | {row['names']} | {row['cells']} | " + " | ".join(cells) + " |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
