"""Plate-based (Smart-seq2-like) matrices as GEO holds them, as annotate's query and as train's
reference: default `celltyper train` on pbmc3k's even cells (counts), default `annotate` of its
odd cells given as read counts (RSEM-like expected reads, 50 per kb per molecule), TPM, TPM kept
for these genes only (the rest of a transcriptome's TPM dropped: unequal totals), and logs of each
(log2(x + 1), log1p, log10(x + 1)), FPKM, reads with ERCC spike-ins, names joining a symbol before
its Ensembl id; then models trained on the even cells in these forms annotating the odd cells'
counts, TPM and reads. Exact accuracy against the Seurat labels, same binaries, same files.

Gene lengths are drawn once per gene (log-normal around 2.5 kb, 300 bp to 15 kb, fixed seed);
the molecules are pbmc3k's real counts.

    /usr/bin/python3 bench/annotate/plate_based.py [--build build] [--before DIR]

Writes bench/results/plate_based.{json,md}.
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


def log(message):
    print(f"[plate_based] {message}", file=sys.stderr, flush=True)


def prepare(workdir):
    path = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
    genes_path = os.path.join(SHARED, "gene-annotations", "human_genes.tsv")
    for needed in (path, genes_path):
        if not os.path.exists(needed):
            sys.exit(f"bench/annotate/plate_based: {needed} is missing: this benchmark needs ../shared/data")
    a = anndata.read_h5ad(path)
    a = anndata.AnnData(sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs[["celltype"]].copy(), var=pd.DataFrame(index=a.var_names))
    reference, query = a[::2].copy(), a[1::2].copy()
    rng = np.random.default_rng(54)
    length = np.exp(rng.normal(np.log(2500), 0.8, a.n_vars)).clip(300, 15000)

    def plate(part):
        counts = part.X.toarray().astype(np.float64)
        reads = np.round(counts * length / 1000 * 50 * rng.uniform(0.9, 1.1, counts.shape), 2)
        rate = reads / length
        tpm = rate / rate.sum(1, keepdims=True) * 1e6
        kept = tpm * (1 - rng.uniform(0.05, 0.4, (counts.shape[0], 1)))  # (TPM of a transcriptome, kept for these genes)
        fpkm = reads / (length / 1e3) / (reads.sum(1, keepdims=True) / 1e6)
        return {"counts": counts, "RSEM reads": reads, "TPM": tpm, "TPM kept for these genes": kept, "FPKM": fpkm,
                "log2(TPM + 1), TPM kept": np.log2(kept + 1), "log2(TPM + 1), whole TPM": np.log2(tpm + 1),
                "log1p(TPM), TPM kept": np.log1p(kept), "log10(TPM + 1), TPM kept": np.log10(kept + 1),
                "log2(FPKM + 1)": np.log2(fpkm + 1), "log2(RSEM reads + 1)": np.log2(reads + 1),
                # a floor per cell in a dense matrix (floored_logs.hpp): edgeR's cpm(log = TRUE) of
                # the counts (floor about 9.7) and of the reads (below 0), a pseudocount of 0.01
                "edgeR log CPM of the counts": log_cpm(counts), "edgeR log CPM of the reads": log_cpm(reads),
                "log2(TPM + 0.01), TPM kept": np.log2(kept + 0.01)}

    def log_cpm(y, prior=2.0):  # edgeR's cpm(y, log = TRUE, prior.count = 2), cells as rows
        library = y.sum(1)
        scaled = library / library.mean() * prior
        return np.log2((y + scaled[:, None]) / (library + 2 * scaled)[:, None]) + np.log2(1e6)

    files = {"query": {}, "reference": {}}

    def write(kind, name, X, part, var=None):
        out = anndata.AnnData(sp.csr_matrix(X.astype(np.float32)), obs=part.obs.copy(), var=part.var.copy() if var is None else var)
        files[kind][name] = os.path.join(workdir, f"{kind}_{len(files[kind])}.h5ad")
        out.write_h5ad(files[kind][name])

    forms = plate(query)
    for name, X in forms.items():
        write("query", name, X, query)
    ercc = rng.poisson(np.outer(forms["RSEM reads"].sum(1), rng.dirichlet(np.ones(92))) * rng.uniform(0.05, 1, (query.n_obs, 1)))
    write("query", "RSEM reads + 92 ERCC spike-ins (5-50% of reads)", np.hstack([forms["RSEM reads"], ercc]), query,
          pd.DataFrame(index=list(query.var_names) + [f"ERCC-{i:05d}" for i in range(1, 93)]))
    table = pd.read_csv(genes_path, sep="\t", usecols=["symbol", "ensembl_ids"]).dropna()
    ensembl = dict(zip(table.symbol, table.ensembl_ids.str.split(",").str[0]))
    joined = [f"{s}_{ensembl[s]}.7" if s in ensembl else s for s in query.var_names]
    write("query", "TPM, names SYMBOL_ENSG...version", forms["TPM"], query, pd.DataFrame(index=pd.Index(joined)))
    for name, X in plate(reference).items():
        if name in ("counts", "RSEM reads", "TPM kept for these genes", "log2(TPM + 1), TPM kept", "log2(TPM + 1), whole TPM",
                    "edgeR log CPM of the counts"):
            write("reference", name, X, reference)
    return files, query.obs["celltype"].astype(str).values


def labels_of(binary, model, query, out_csv):
    done = subprocess.run([binary, "annotate", "-m", model, "-i", query, "--csv", out_csv, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1]
    frame = pd.read_csv(out_csv, index_col=0)
    return frame["celltyper_label"].astype(str).values, float(frame["celltyper_score"].median())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", default=None, help="a second build folder (its celltyper) run on the same files")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "plate_based"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or os.path.join("/tmp", f"plate_based_bench_{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    files, truth = prepare(workdir)
    binaries = [("this build", os.path.join(args.build, "celltyper"))] + ([("before", os.path.join(args.before, "celltyper"))] if args.before else [])
    rows = []  # (reference form, query form) -> per binary accuracy / median score
    results = {}
    for which, binary in binaries:
        tag = which.replace(" ", "_")
        for r, (reference_name, reference_path) in enumerate(files["reference"].items()):
            model = os.path.join(workdir, f"{tag}_model_{r}.h5")
            subprocess.run([binary, "train", "-r", reference_path, "-l", "obs:celltype", "-o", model, "-q"], check=True, capture_output=True)
            queries = files["query"] if reference_name == "counts" else {k: files["query"][k] for k in ("counts", "TPM", "RSEM reads")}
            for query_name, query_path in queries.items():
                got, score = labels_of(binary, model, query_path, os.path.join(workdir, f"{tag}_{r}_{os.path.basename(query_path)}.csv"))
                key = (reference_name, query_name)
                if key not in results:
                    rows.append(key)
                    results[key] = {}
                results[key][which] = {"error": score} if got is None else {"accuracy": float((got == truth).mean()), "median_score": score}
                if got is not None:
                    log(f"{which}: {reference_name} -> {query_name}: accuracy {results[key][which]['accuracy']:.3f}")
    elapsed = time.time() - started
    with open(args.out + ".json", "w") as handle:
        json.dump({"commit": measure.git_commit(ROOT), "seconds": elapsed,
                   "rows": [{"reference": r, "query": q, **results[(r, q)]} for r, q in rows]}, handle, indent=1)
    lines = ["# Plate-based matrices as query and reference (bench/annotate/plate_based.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/plate_based.py{' --before DIR' if args.before else ''}`; celltyper "
             f"{measure.git_commit(ROOT)}; {elapsed:.0f} s on {os.cpu_count()} cores. Default `train` on pbmc3k's even cells in the "
             f"reference's form, default `annotate` of its odd cells ({len(truth)}) in the query's form; accuracy = exact labels against "
             "the Seurat labels (score = median celltyper_score). Smart-seq2-like values from the real counts: RSEM-like reads "
             "(50 per kb per molecule, gene lengths drawn per gene), TPM, TPM kept for these genes (totals 60-95% of a million), FPKM; edgeR's cpm(log = TRUE, prior.count = 2) of the counts and of the reads, dense (a floor per cell).", "",
             "| reference | query | " + " | ".join(f"{w}: accuracy (score)" for w, _ in binaries) + " |", "|---|---|" + "---|" * len(binaries)]
    for r, q in rows:
        cells = []
        for which, _ in binaries:
            e = results[(r, q)].get(which, {"error": "not run"})
            cells.append(f"fails: {e['error'][:80]}" if "error" in e else f"{e['accuracy']:.3f} ({e['median_score']:.2f})")
        lines.append(f"| {r} | {q} | " + " | ".join(cells) + " |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
