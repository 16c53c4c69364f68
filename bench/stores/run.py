#!/usr/bin/python3
"""Gene stores for cells: which offline gene embedding makes the best GenePT-w features?

On the folds of bench/peers (savercat leave-one-technology-out, pancreas Xin -> Wang, pbmc3k <->
pbmc68k_reduced, cellbench CEL-seq2 <-> Drop-seq; real data from ../shared/data), `celltyper cv`
runs every classifier on GenePT-w cell embeddings made with each gene store below, and once on
expression features (which use no store), with everything else at its default (each fold trained
on the genes its held-out cells measured, as bench/peers does). Macro-F1 and hierarchical F are
means over the folds of a setup; the summary averages the setups.

Stores (built if absent, under --stores-dir):
  lsa-256        the default store (scripts/setup.sh: LSA of the gene texts, 256 dims)
  lsa-1024       the same LSA at 1024 dims
  use-lite       `genes embed --backend use-lite` (Universal Sentence Encoder Lite, 512 dims)
  lsa-1024+use   `genes combine lsa-1024 use-lite` (weights 1,1; principal axes; 1536 dims)
  use-lite-c     `genes combine use-lite --center` (mean gene vector removed, rows re-normalised)
  lsa-1024+use-c `genes combine lsa-1024 use-lite --center`
  lsa-1024+use-256  `genes truncate lsa-1024+use --dims 256`: the combination's leading 256 axes, the
                 default store's size and per-cell cost
  names-1024     LSA 1024 of texts holding only the symbol, full name and gene type (`--sections
                 name,type`): gene vectors that are nearly orthogonal and carry little biology
  names-256      the same at 256 dims
  lsa-1024+names-1024      `genes combine lsa-1024 names-1024` (2048 dims)
  lsa-1024+names-1024-512  its leading 512 axes
  lsa-256+names-256        `genes combine lsa-256 names-256` (512 dims)
  (further stores: --store NAME=PATH, e.g. an imported OpenAI store)

    /usr/bin/python3 bench/stores/run.py [--build build] [--classifiers logreg,knn,mlp,xgboost] [--setups ...]
        [--stores-dir build/bench-stores] [--store NAME=PATH ...] [--only NAME,... (adds to an existing OUT.json)]

Writes bench/results/stores.json and bench/results/stores.md.
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUMMARIES = os.path.join(ROOT, "..", "shared", "data", "gene-annotations", "human_genes.tsv")



def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = load_module("peers", os.path.join(ROOT, "bench", "peers", "run.py"))
genes_bench = load_module("genes_bench", os.path.join(ROOT, "bench", "genes", "run.py"))


def gene_level(stores):
    """bench/genes' measures for every store, on the genes of the default store (missing rows are
    zero): median rank of a marker's partner among all genes, and the share of a gene's 10 nearest
    genes that share a GO BP term with it (2000 sampled genes, seed 0)."""
    import random
    import numpy as np
    universe, _, symbols = genes_bench.load_store(stores["lsa-256"][0])
    bp_sets = genes_bench.go_bp_sets(universe)
    annotated = [i for i, terms in enumerate(bp_sets) if terms]
    sample = sorted(random.Random(0).sample(annotated, min(2000, len(annotated))))
    out = {}
    for name, (path, _) in stores.items():
        ids, matrix, _ = genes_bench.load_store(path)
        aligned = genes_bench.align(ids, matrix, universe)
        ranks = genes_bench.marker_ranks(aligned, symbols)
        values = np.array(list(ranks.values()), dtype=float)
        out[name] = dict(marker_rank_median=float(np.median(values)),
                         marker_rank_geomean=float(np.exp(np.mean(np.log(values)))),
                         go_bp_top10=float(genes_bench.go_agreement(aligned, bp_sets, sample)),
                         genes_covered=int(np.count_nonzero(np.abs(aligned).sum(axis=1))))
        log(f"gene level {name}: {out[name]}")
    return out


def log(message):
    print(f"[stores] {message}", file=sys.stderr, flush=True)


def timed(command):
    t = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"bench/stores: {' '.join(command)} failed:\n{run.stderr}")
    return time.perf_counter() - t


def write_report(report, out, render):
    """Write OUT.json and OUT.md (the markdown `render(report)` gives) and print the markdown."""
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    text = render(report)
    with open(out + ".md", "w") as f:
        f.write(text)
    print(text)


def store_recipes(celltyper):
    """name -> (stores it is made from, the command that makes it given their paths and its own)."""
    summaries = ["--summaries", SUMMARIES] if os.path.exists(SUMMARIES) else []

    def embed(*flags):
        return lambda inputs, out: [celltyper, "genes", "embed", *flags, "--out", out]

    def combine(*flags):
        return lambda inputs, out: [celltyper, "genes", "combine", *inputs, *flags, "--out", out]

    def truncate(dims):
        return lambda inputs, out: [celltyper, "genes", "truncate", inputs[0], "--dims", str(dims), "--out", out]

    return {
        "lsa-1024": ([], embed("--backend", "lsa", "--dims", "1024", *summaries)),
        "use-lite": ([], embed("--backend", "use-lite", *summaries)),
        "lsa-1024+use": (["lsa-1024", "use-lite"], combine()),
        "use-lite-c": (["use-lite"], combine("--center")),
        "lsa-1024+use-c": (["lsa-1024", "use-lite"], combine("--center")),
        "lsa-1024+use-256": (["lsa-1024+use"], truncate(256)),
        "names-1024": ([], embed("--backend", "lsa", "--dims", "1024", "--sections", "name,type")),
        "names-256": ([], embed("--backend", "lsa", "--dims", "256", "--sections", "name,type")),
        "lsa-1024+names-1024": (["lsa-1024", "names-1024"], combine()),
        "lsa-1024+names-1024-512": (["lsa-1024+names-1024"], truncate(512)),
        "lsa-256+names-256": (["lsa-256", "names-256"], combine()),
    }


def build_stores(celltyper, directory, extra, wanted=None):
    """name -> (path, build seconds or None when it was there already), for the stores `wanted`
    (default: every store) and `extra` (NAME=PATH); a store is built only when it, or a store
    made from it, is wanted and its file is absent."""
    os.makedirs(directory, exist_ok=True)
    recipes = store_recipes(celltyper)
    default = os.path.join(os.path.dirname(celltyper), "share", "celltyper", "gene_embeddings.h5")
    stores = {"lsa-256": (default, None)}

    def need(name):
        if name in stores:
            return stores[name][0]
        inputs, command = recipes[name]
        paths = [need(i) for i in inputs]
        path = os.path.join(directory, f"{name}.h5")
        seconds = None
        if not os.path.exists(path):
            log(f"building {name}")
            seconds = timed(command(paths, path))
        stores[name] = (path, seconds)
        return path

    for name in (recipes if wanted is None else [w for w in wanted if w in recipes]):
        need(name)
    for item in extra:
        name, path = item.split("=", 1)
        stores[name] = (path, None)
    if wanted is not None:  # (in the order asked, the default store first)
        return {name: stores[name] for name in ["lsa-256"] + [w for w in wanted if w != "lsa-256"] if name in stores}
    return stores


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--classifiers", default="logreg,knn,mlp,xgboost")
    parser.add_argument("--setups", default="savercat,pancreas,pbmc,cellbench")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--stores-dir", default=os.path.join(ROOT, "build", "bench-stores"))
    parser.add_argument("--store", action="append", default=[], help="NAME=PATH: a further gene store to compare")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "stores"))
    parser.add_argument("--gene-level-only", action="store_true", help="only the gene-level table (prints JSON)")
    parser.add_argument("--only", default=None, help="run only these stores (comma-separated; 'expression' for that route) "
                        "and merge them into the existing OUT.json")
    parser.add_argument("--render", action="store_true", help="rewrite OUT.md from OUT.json (adding the gene-level table if absent)")
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    if args.render:
        with open(args.out + ".json") as f:
            report = json.load(f)
        if "gene_level" not in report:
            report["gene_level"] = gene_level({name: (s["path"], None) for name, s in report["stores"].items()})
        with open(args.out + ".json", "w") as f:
            json.dump(report, f, indent=2)
        with open(args.out + ".md", "w") as f:
            f.write(markdown(report))
        return
    started = time.perf_counter()
    only = args.only.split(",") if args.only else None
    # --only builds just the stores it names (and what they are made from); the gene-level table
    # always compares them with the default store, lsa-256.
    stores_for_genes = build_stores(celltyper, args.stores_dir, args.store,
                                    wanted=None if only is None else only + [e.split("=", 1)[0] for e in args.store])
    stores = {name: s for name, s in stores_for_genes.items() if only is None or name in only}
    previous = None
    if only:
        with open(args.out + ".json") as f:
            previous = json.load(f)
    genes = gene_level(stores_for_genes)
    if args.gene_level_only:
        print(json.dumps(genes, indent=2))
        return
    info = {}
    for name, (path, seconds) in stores.items():
        text = subprocess.run([celltyper, "genes", "info", path], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        n_genes, dims = (int(x) for x in fields["genes x dims"].split(" (")[0].split(" x "))
        info[name] = dict(path=path, build_seconds=seconds, n_genes=n_genes, dims=dims,
                          backend=fields["backend / model"].split(" / ")[0].strip(), size_mb=os.path.getsize(path) / 1e6)
    workdir = tempfile.mkdtemp(prefix="celltyper-stores-")
    setups = peers.prepare(workdir)
    classifiers = args.classifiers.split(",")
    results = {}
    for setup_name in args.setups.split(","):
        setup = setups[setup_name]
        rows = {}
        if not only or "expression" in only:
            log(f"{setup_name}: expression")
            ours, _, _ = peers.run_celltyper(celltyper, setup, setup_name, classifiers, args.threads, workdir, features="expression")
            rows = {f"expression {m.split(':')[0][len('celltyper '):]}": r for m, r in ours.items()
                    if ":" in m and not m.endswith("+hierarchical")}
        for name, (path, _) in stores.items():
            log(f"{setup_name}: genept with {name}")
            ours, _, _ = peers.run_celltyper(celltyper, setup, setup_name, classifiers, args.threads, workdir, genes=path, features="genept")
            rows.update({f"{name} {m.split(':')[0][len('celltyper '):]}": r for m, r in ours.items()
                         if ":" in m and not m.endswith("+hierarchical")})
        results[setup_name] = rows
    report = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), load=os.getloadavg()), stores=info, gene_level=genes,
                  classifiers=classifiers, setups=results, wall_seconds=time.perf_counter() - started)
    if previous:  # merge into the earlier run
        previous["stores"].update(info)
        previous.setdefault("gene_level", {}).update(genes)
        for setup_name, rows in results.items():
            previous["setups"].setdefault(setup_name, {}).update(rows)
        previous["wall_seconds"] += report["wall_seconds"]
        report = previous
    write_report(report, args.out, markdown)
    shutil.rmtree(workdir, ignore_errors=True)


def markdown(report):
    classifiers = report["classifiers"]
    routes = ["expression"] + list(report["stores"])
    lines = ["# Gene stores for cells: GenePT-w features per store vs expression features", "",
             f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} cores; total wall {report['wall_seconds']:.0f} s. "
             "Reproduce: `/usr/bin/python3 bench/stores/run.py`.", "",
             "Every row is `celltyper cv` with default settings except the feature route and `--genes` (folds of bench/peers; each "
             "fold trained on the genes its held-out cells measured). Macro-F1 / hierarchical F: mean over a setup's folds; "
             "'mean' averages the setups.", "",
             "| store | backend | genes | dims | size (MB) | build (s) |", "|---|---|---:|---:|---:|---:|"]
    for name, s in report["stores"].items():
        build = f"{s['build_seconds']:.0f}" if s["build_seconds"] is not None else "(existing)"
        lines.append(f"| {name} | {s['backend']} | {s['n_genes']} | {s['dims']} | {s['size_mb']:.0f} | {build} |")
    lines += ["", "Gene level (bench/genes' measures on the default store's genes): median and geometric-mean rank of a marker's "
              "partner among all genes (lower is better), share of the 10 nearest genes sharing a GO BP term (higher is better; "
              "the texts contain the GO term names, so this partly measures how much of its input a store keeps).", "",
              "| store | median marker rank | geometric mean rank | GO BP top-10 shared |", "|---|---:|---:|---:|"]
    for name, g in report["gene_level"].items():
        lines.append(f"| {name} | {g['marker_rank_median']:.1f} | {g['marker_rank_geomean']:.1f} | {g['go_bp_top10']:.3f} |")
    lines += [""]
    for key, title in (("macro_f1", "Macro-F1"), ("hierarchical_f", "Hierarchical F")):
        lines += [f"## {title}", "", "| features | classifier | " + " | ".join(report["setups"]) + " | mean | vs expression (same classifier) |",
                  "|---|---|" + "---:|" * (len(report["setups"]) + 2)]
        for route in routes:
            for c in classifiers:
                values = []
                for setup in report["setups"].values():
                    r = setup.get(f"{route} {c}", {})
                    values.append(r.get("mean", {}).get(key))
                present = [v for v in values if v is not None]
                if not present:
                    continue
                mean = statistics.fmean(present)
                expression = [setup.get(f"expression {c}", {}).get("mean", {}).get(key) for setup in report["setups"].values()]
                expression = [v for v in expression if v is not None]
                gap = "" if route == "expression" or not expression else f"{mean - statistics.fmean(expression):+.3f}"
                cells = [("" if v is None else f"{v:.3f}") for v in values]
                lines.append(f"| {'GenePT-w ' + route if route != 'expression' else 'expression'} | {c} | " + " | ".join(cells)
                             + f" | {mean:.3f} | {gap} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
