"""CITE-seq and multiome files as annotate's query: default `celltyper train` on pbmc3k's even cells
(plain RNA), default `annotate` of its odd cells with antibody tags or ATAC peaks beside the genes,
the way files arrive: Cell Ranger's feature types, another tool's spelling of them ('Protein'), no
type column (a 10x file read without gex_only, a Seurat export), a tag matrix joined to a Cell
Ranger one (pandas leaves the tags' types NaN); peaks named as genome intervals without types.
Exact accuracy against the Seurat labels and agreement with the plain-RNA query's labels, same
binary, same run.

The genes' counts are pbmc3k's; each tag's counts are drawn from its genes' counts (Poisson of
background + a scaled copy: CD3_TotalSeqB from CD3E and CD3D, CD16 from FCGR3A, ...; isotype
controls background only), each peak's from a gene's counts (Poisson of half of them).

    /usr/bin/python3 bench/annotate/multimodal.py [--build build] [--before DIR]

Writes bench/results/multimodal.{json,md}.
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
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

TAGS = {"CD3_TotalSeqB": ["CD3E", "CD3D"], "CD4-1": ["CD4"], "CD8A-1": ["CD8A"], "CD14-1": ["CD14"], "CD16": ["FCGR3A"],
        "CD56": ["NCAM1"], "CD19-TotalSeqC": ["CD19", "MS4A1"], "CD45RA": ["PTPRC"], "CD45RO": ["PTPRC"], "CD62L": ["SELL"],
        "CD27-1": ["CD27"], "CD127": ["IL7R"], "HLA-DR": ["HLA-DRA"], "CD11c": ["ITGAX"], "CD123": ["IL3RA"], "CD1c": ["CD1C"],
        "CD161": ["KLRB1"], "CD25": ["IL2RA"], "CD69-1": ["CD69"], "TIGIT-1": ["TIGIT"], "CD57": ["B3GAT1"], "CD38-1": ["CD38"],
        "CD79b": ["CD79B"], "IgG1_isotype": [], "IgG2a_isotype": [], "IgG2b_isotype": [], "Mouse_IgG1_ctrl": []}


def log(message):
    print(f"[multimodal] {message}", file=sys.stderr, flush=True)


def prepare(workdir):
    path = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
    if not os.path.exists(path):
        sys.exit(f"bench/annotate/multimodal: {path} is missing: this benchmark needs ../shared/data")
    a = anndata.read_h5ad(path)
    a = anndata.AnnData(sp.csr_matrix(a.X), obs=a.obs[["celltype"]].copy(), var=pd.DataFrame(index=a.var_names))
    a.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(a.n_vars)]  # (Cell Ranger's id column: Ensembl ids for genes)
    reference, query = a[::2].copy(), a[1::2].copy()
    files = {"reference": os.path.join(workdir, "reference.h5ad"), "plain RNA": os.path.join(workdir, "rna.h5ad")}
    reference.write_h5ad(files["reference"])
    query.write_h5ad(files["plain RNA"])
    rng = np.random.default_rng(52)
    X = query.X.toarray()
    column = {g: i for i, g in enumerate(query.var_names)}
    capture = rng.gamma(4.0, 0.25, query.n_obs)  # per-cell antibody capture
    adt = []
    for genes in TAGS.values():
        signal = sum(X[:, column[g]] for g in genes if g in column) if genes else np.zeros(query.n_obs)
        adt.append(rng.poisson(capture * (40 + 150 * signal)))
    adt = np.column_stack(adt).astype(np.float32)
    picked = rng.choice(query.n_vars, 5000)
    peaks = rng.poisson(0.5 * X[:, picked]).astype(np.float32)
    peak_names = [f"chr{1 + i % 22}:{1000 * i + 10}-{1000 * i + 510}" for i in range(len(picked))]
    genes, ids, tags = list(query.var_names), list(query.var["gene_ids"]), list(TAGS)

    def write(name, blocks, names, var):
        out = anndata.AnnData(sp.csr_matrix(np.hstack(blocks)), obs=query.obs.copy(), var=var)
        out.var_names = names
        files[name] = os.path.join(workdir, name.replace(" ", "_").replace("'", "") + ".h5ad")
        out.write_h5ad(files[name])

    n = len(tags)
    write("CITE-seq, Cell Ranger's types", [X, adt], genes + tags,
          pd.DataFrame({"gene_ids": ids + tags, "feature_types": ["Gene Expression"] * len(genes) + ["Antibody Capture"] * n}))
    write("CITE-seq, types 'Protein'", [X, adt], genes + tags,
          pd.DataFrame({"gene_ids": ids + tags, "feature_types": ["Gene Expression"] * len(genes) + ["Protein"] * n}))
    write("CITE-seq, no type column", [X, adt], genes + tags, pd.DataFrame({"gene_ids": ids + tags}))
    write("CITE-seq, tags joined (types NaN)", [X, adt], genes + tags,
          pd.DataFrame({"gene_ids": ids + [np.nan] * n, "feature_types": ["Gene Expression"] * len(genes) + [np.nan] * n}))
    write("multiome, no type column", [X, peaks], genes + peak_names, pd.DataFrame({"gene_ids": ids + peak_names}))
    return files


def labels_of(binary, model, query, out_csv):
    done = subprocess.run([binary, "annotate", "-m", model, "-i", query, "--csv", out_csv, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1]
    return pd.read_csv(out_csv, index_col=0).iloc[:, 0].astype(str).values, done.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", default=None, help="a second build folder (its celltyper) run on the same files")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "multimodal"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or os.path.join("/tmp", f"multimodal_bench_{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    files = prepare(workdir)
    truth = anndata.read_h5ad(files["plain RNA"], backed="r").obs["celltype"].astype(str).values
    binaries = [("this build", os.path.join(args.build, "celltyper"))] + ([("before", os.path.join(args.before, "celltyper"))] if args.before else [])
    rows = {name: {} for name in files if name != "reference"}
    for which, binary in binaries:
        tag = which.replace(" ", "_")
        model = os.path.join(workdir, f"{tag}.h5")
        subprocess.run([binary, "train", "-r", files["reference"], "-l", "obs:celltype", "-o", model, "-q"], check=True, capture_output=True)
        plain, _ = labels_of(binary, model, files["plain RNA"], os.path.join(workdir, f"{tag}_rna.csv"))
        for name, path in files.items():
            if name == "reference":
                continue
            got, said = labels_of(binary, model, path, os.path.join(workdir, f"{tag}_{os.path.basename(path)}.csv"))
            if got is None:
                rows[name][which] = {"error": said}
                continue
            rows[name][which] = {"accuracy": float((got == truth).mean()), "agreement_with_plain_rna": float((got == plain).mean()),
                                 "said": [line for line in said.splitlines() if "no gene" in line][:1]}
            log(f"{which}, {name}: accuracy {rows[name][which]['accuracy']:.3f}, agreement {rows[name][which]['agreement_with_plain_rna']:.3f}")
    elapsed = time.time() - started
    with open(args.out + ".json", "w") as handle:
        json.dump({"commit": measure.git_commit(ROOT), "seconds": elapsed, "rows": rows}, handle, indent=1)
    lines = ["# CITE-seq and multiome queries (bench/annotate/multimodal.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/multimodal.py{' --before DIR' if args.before else ''}`; celltyper "
             f"{measure.git_commit(ROOT)}; {elapsed:.0f} s on {os.cpu_count()} cores. Default `train` on pbmc3k's even cells (plain RNA), "
             f"default `annotate` of its odd cells ({len(truth)}) with {len(TAGS)} antibody tags or 5,000 peaks beside the genes; accuracy "
             "= exact labels against the Seurat labels; agreement = the plain-RNA query's labels (same binary).", "",
             "| query | " + " | ".join(f"{w}: accuracy | {w}: agreement" for w, _ in binaries) + " |", "|---|" + "---|---|" * len(binaries)]
    for name, entry in rows.items():
        cells = []
        for which, _ in binaries:
            e = entry[which]
            cells += [f"fails: {e['error'][:100]}", ""] if "error" in e else [f"{e['accuracy']:.3f}", f"{e['agreement_with_plain_rna']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
