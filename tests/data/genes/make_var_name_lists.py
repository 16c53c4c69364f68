#!/usr/bin/env python3
"""Write the var names (gene identifiers) of two shared datasets as plain text, one per line.

The gene-resolution tests (tests/genes/gene_resolver_test.cpp) read these lists so that they do not
depend on the h5ad reader. Run from the repository root with Debian's python3-h5py:

    /usr/bin/python3 tests/data/genes/make_var_name_lists.py [../shared/data]

Outputs (beside this script):
  pbmc3k_var_names.txt         13,714 gene symbols (10x pbmc3k, Seurat tutorial)
  cellbench_3cl_var_names.txt  28,258 Ensembl gene ids (CellBench 3 cell lines)
"""
import pathlib
import sys

import h5py

SOURCES = {
    "pbmc3k_var_names.txt": "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad",
    "cellbench_3cl_var_names.txt": "cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad",
}


def var_names(path: pathlib.Path) -> list[str]:
    with h5py.File(path, "r") as handle:
        var = handle["var"]
        index_name = var.attrs["_index"]
        return [name.decode("utf-8") for name in var[index_name][:]]


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    shared = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[3] / "shared" / "data"
    for output, relative in SOURCES.items():
        names = var_names(shared / relative)
        (here / output).write_text("".join(name + "\n" for name in names), encoding="utf-8")
        print(f"{output}: {len(names)} names from {relative}")


if __name__ == "__main__":
    main()
