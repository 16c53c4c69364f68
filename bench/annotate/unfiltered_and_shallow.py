"""A core facility's queries: what comes off the sequencer before anyone filters it. Default
`celltyper train` on pbmc3k's even cells; default `annotate` of its odd cells (1,319)

1. beside empty droplets, as an unfiltered matrix holds them (barcodes of 10-200 counts drawn from
   the ambient profile, the mean of every cell): 0, 1,000 (43% of the barcodes) and 20,000 (94%),
   in reference mode (`annotate --reference`) and in model mode on 90% of the genes (which refits);
   exact accuracy of the cells themselves, their agreement with the cells annotated alone, and the
   empty droplets' own scores;
2. with every gene but thinned to a share of their counts (a shallow run), 3 seeds, model mode and
   reference mode: exact accuracy, macro-F1 and mean score.

Every file is made from pbmc3k's real counts. With --before DIR a second build runs on the same
files in the same run.

    /usr/bin/python3 bench/annotate/unfiltered_and_shallow.py [--build build] [--before DIR]

Writes bench/results/unfiltered_and_shallow.{json,md}.
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
from sklearn.metrics import f1_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import measure  # noqa: E402

EMPTIES = [0, 1000, 20000]
SHARES = [0.03, 0.08, 0.15, 0.25, 0.35, 0.45, 0.6]
SEEDS = [0, 1, 2]


def log(message):
    print(f"[unfiltered_and_shallow] {message}", file=sys.stderr, flush=True)


def prepare(workdir):
    path = os.path.join(SHARED, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
    if not os.path.exists(path):
        sys.exit(f"bench/annotate/unfiltered_and_shallow: {path} is missing: this benchmark needs ../shared/data")
    a = anndata.read_h5ad(path)
    X = sp.csr_matrix(a.X).astype(np.int64)
    var = pd.DataFrame(index=a.var_names)
    files = {"reference": os.path.join(workdir, "even.h5ad")}

    def write(Y, obs, name, genes=slice(None)):
        files[name] = os.path.join(workdir, name + ".h5ad")
        anndata.AnnData(X=sp.csr_matrix(Y, dtype=np.float32)[:, genes], obs=obs, var=var.iloc[genes]).write_h5ad(files[name])

    write(X[0::2], a.obs[["celltype"]][0::2], "even")
    files["reference"] = files.pop("even")
    odd = X[1::2]
    obs = pd.DataFrame({"celltype": a.obs["celltype"].astype(str).values[1::2]}, index=a.obs_names[1::2])
    rng = np.random.default_rng(53)
    ambient = np.asarray(X.sum(0), dtype=np.float64).ravel()
    ambient /= ambient.sum()
    keep = np.sort(rng.choice(X.shape[1], int(0.9 * X.shape[1]), replace=False))
    for n in EMPTIES:
        sizes = rng.integers(10, 201, n)
        genes = rng.choice(X.shape[1], int(sizes.sum()), p=ambient)
        empty = sp.csr_matrix((np.ones(len(genes), np.int64), (np.repeat(np.arange(n), sizes), genes)), shape=(n, X.shape[1]))
        empty.sum_duplicates()
        both = sp.vstack([odd, empty]).tocsr()
        both_obs = pd.concat([obs, pd.DataFrame({"celltype": ["empty droplet"] * n}, index=[f"empty{i}" for i in range(n)])])
        write(both, both_obs, f"empties{n}")
        write(both, both_obs, f"empties{n}_genes90", keep)
    for seed in SEEDS:
        thin = np.random.default_rng(seed)
        for share in SHARES:
            Y = odd.copy()
            Y.data = thin.binomial(Y.data, share)
            Y.eliminate_zeros()
            write(Y, obs, f"share{share}_seed{seed}")
    return files


def annotate(binary, args, out):
    started = time.perf_counter()
    done = subprocess.run([binary, "annotate", *args, "-o", out], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} annotate {' '.join(args)}: {done.stderr.strip()}")
    obs = anndata.read_h5ad(out).obs
    return obs, time.perf_counter() - started, done.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--before", default=None, help="a second build folder (its celltyper) run on the same files")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "unfiltered_and_shallow"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or os.path.join("/tmp", f"unfiltered_bench_{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    files = prepare(workdir)
    reference = files["reference"]
    binaries = [("this build", os.path.join(args.build, "celltyper"))] + ([("before", os.path.join(args.before, "celltyper"))] if args.before else [])
    result = {"unfiltered": {}, "shallow": {}}
    for which, binary in binaries:
        tag = which.replace(" ", "_")
        model = os.path.join(workdir, f"{tag}.h5")
        subprocess.run([binary, "train", "-r", reference, "-l", "obs:celltype", "-o", model, "-q"], check=True, capture_output=True)
        alone = {}
        for mode in ("reference mode", "model mode, 90% of the genes"):
            for n in EMPTIES:
                name = f"empties{n}" + ("_genes90" if mode.startswith("model") else "")
                mode_args = ["-r", reference, "-l", "obs:celltype"] if mode == "reference mode" else ["-m", model]
                obs, seconds, said = annotate(binary, mode_args + ["-i", files[name]], os.path.join(workdir, f"{tag}_{name}_out.h5ad"))
                cells = obs[obs["celltype"] != "empty droplet"]
                labels = cells["celltyper_label"].astype(str)
                if n == 0:
                    alone[mode] = labels
                empty = obs[obs["celltype"] == "empty droplet"]
                row = {"accuracy": float((labels == cells["celltype"]).mean()), "agreement_with_alone": float((labels == alone[mode]).mean()),
                       "seconds": seconds, "depth_matched": "thinned to that depth" in said}
                if len(empty):
                    row["empty_median_score"] = float(empty["celltyper_score"].median())
                    row["empty_share_scored_0.5"] = float((empty["celltyper_score"] >= 0.5).mean())
                result["unfiltered"].setdefault(f"{mode}, {n} empty droplets", {})[which] = row
                log(f"{which}, {mode}, {n} empty droplets: accuracy {row['accuracy']:.3f}")
        for mode in ("model mode", "reference mode"):
            for share in SHARES:
                values = []
                matched = 0
                for seed in SEEDS:
                    name = f"share{share}_seed{seed}"
                    mode_args = ["-m", model] if mode == "model mode" else ["-r", reference, "-l", "obs:celltype"]
                    obs, seconds, said = annotate(binary, mode_args + ["-i", files[name]], os.path.join(workdir, f"{tag}_{name}_{mode[0]}.h5ad"))
                    y, predicted = obs["celltype"].astype(str), obs["celltyper_label"].astype(str)
                    values.append(((y == predicted).mean(), f1_score(y, predicted, average="macro"), obs["celltyper_score"].mean(), seconds))
                    matched += "thinned to that depth" in said
                mean = np.mean(values, axis=0)
                result["shallow"].setdefault(f"{mode}, {share:.0%} of the counts", {})[which] = {
                    "accuracy": float(mean[0]), "macro_f1": float(mean[1]), "mean_score": float(mean[2]), "seconds": float(mean[3]),
                    "depth_matched_runs": matched}
                log(f"{which}, {mode}, {share:.0%}: accuracy {mean[0]:.3f}")
    elapsed = time.time() - started
    with open(args.out + ".json", "w") as handle:
        json.dump({"commit": measure.git_commit(ROOT), "seconds": elapsed, **result}, handle, indent=1)
    names = [w for w, _ in binaries]
    lines = ["# Unfiltered and shallow queries (bench/annotate/unfiltered_and_shallow.py)", "",
             f"Command: `/usr/bin/python3 bench/annotate/unfiltered_and_shallow.py{' --before DIR' if args.before else ''}`; celltyper "
             f"{measure.git_commit(ROOT)}; {elapsed:.0f} s on {os.cpu_count()} cores. Default `train` on pbmc3k's even cells, default "
             "`annotate` of its 1,319 odd cells. Accuracy = exact labels against the Seurat labels.", "",
             "## Cells beside empty droplets (ambient profile, 10-200 counts)", "",
             "| query | " + " | ".join(f"{w}: cells' accuracy | {w}: as alone | {w}: empties scored >= 0.5 | {w}: depth matched" for w in names) + " |",
             "|---|" + "---|---|---|---|" * len(names)]
    for name, entry in result["unfiltered"].items():
        cells = []
        for w in names:
            e = entry[w]
            cells += [f"{e['accuracy']:.3f}", f"{e['agreement_with_alone']:.3f}",
                      f"{e['empty_share_scored_0.5']:.2f} (median {e['empty_median_score']:.2f})" if "empty_median_score" in e else "",
                      "yes" if e["depth_matched"] else "no"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"## Every gene, thinned to a share of the counts ({len(SEEDS)} seeds: means)", "",
              "| query | " + " | ".join(f"{w}: accuracy / macro-F1 / mean score | {w}: s | {w}: matched" for w in names) + " |",
              "|---|" + "---|---|---|" * len(names)]
    for name, entry in result["shallow"].items():
        cells = []
        for w in names:
            e = entry[w]
            cells += [f"{e['accuracy']:.3f} / {e['macro_f1']:.3f} / {e['mean_score']:.2f}", f"{e['seconds']:.2f}",
                      f"{e['depth_matched_runs']} of {len(SEEDS)}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(args.out + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log(f"wrote {args.out}.md ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
