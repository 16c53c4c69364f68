#!/usr/bin/python3
"""Generate the tiny "hostile input" fixtures of celltyper (issue #19): files that read without
a structural error but would give a silent wrong answer.

Run from anywhere:  /usr/bin/python3 tests/data/make_hostile_fixtures.py

Deterministic; writes into tests/data/hostile/ next to this script. Derived from dataset A
(tests/data/h5ad/csr_float32.h5ad, made by make_fixtures.py: 12 cells x 10 genes, symbols in the
var index, Ensembl ids in var['gene_ids']). Needs python3-anndata (0.8.0), python3-h5py.

| file | content |
|---|---|
| var_range_index.h5ad | dataset A written by anndata without var_names: var index '0'..'9' (RangeIndex), no var column |
| var_range_index_gene_ids.h5ad | the same with var['gene_ids'] (Ensembl ids) kept: the index is row numbers, a column has the genes |
| var_missing.h5ad | csr_float32.h5ad without the /var group |
| csr_unsorted_indices.h5ad | csr_float32.h5ad with row 0's entries stored in reverse column order (same matrix) |
| csr_duplicate_indices.h5ad | csr_float32.h5ad with row 0's second entry moved onto the column of its first (column 0 twice) |
"""
import os
import shutil
import warnings

import h5py
import numpy as np
import pandas as pd

import anndata as ad

warnings.simplefilter("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "h5ad", "csr_float32.h5ad")
OUT = os.path.join(HERE, "hostile")


def copy(name):
    path = os.path.join(OUT, name)
    shutil.copyfile(SOURCE, path)
    return path


def range_index(name, keep_gene_ids):
    source = ad.read_h5ad(SOURCE)
    var = pd.DataFrame(index=pd.RangeIndex(source.n_vars).astype(str))
    if keep_gene_ids:
        var["gene_ids"] = source.var["gene_ids"].to_numpy()
    adata = ad.AnnData(source.X, obs=source.obs, var=var)
    assert list(adata.var_names) == [str(i) for i in range(source.n_vars)]
    adata.write_h5ad(os.path.join(OUT, name))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    range_index("var_range_index.h5ad", keep_gene_ids=False)
    range_index("var_range_index_gene_ids.h5ad", keep_gene_ids=True)

    with h5py.File(copy("var_missing.h5ad"), "r+") as f:
        del f["var"]

    with h5py.File(copy("csr_unsorted_indices.h5ad"), "r+") as f:
        indptr = f["X/indptr"][()]
        begin, end = int(indptr[0]), int(indptr[1])
        assert end - begin >= 3
        indices = f["X/indices"][()]
        data = f["X/data"][()]
        indices[begin:end] = indices[begin:end][::-1].copy()
        data[begin:end] = data[begin:end][::-1].copy()
        f["X/indices"][...] = indices
        f["X/data"][...] = data

    with h5py.File(copy("csr_duplicate_indices.h5ad"), "r+") as f:
        indptr = f["X/indptr"][()]
        indices = f["X/indices"][()]
        assert indptr[1] - indptr[0] >= 2 and indices[0] == 0
        indices[1] = indices[0]  # row 0 stores column 0 twice
        f["X/indices"][...] = indices

    # Self-check with anndata / numpy.
    a = ad.read_h5ad(os.path.join(OUT, "var_range_index.h5ad"))
    assert list(a.var_names) == [str(i) for i in range(10)] and a.var.shape[1] == 0
    b = ad.read_h5ad(os.path.join(OUT, "var_range_index_gene_ids.h5ad"))
    assert b.var["gene_ids"].iloc[0].startswith("ENSG")
    good = ad.read_h5ad(SOURCE).X.toarray()
    unsorted = ad.read_h5ad(os.path.join(OUT, "csr_unsorted_indices.h5ad")).X
    assert not unsorted.has_sorted_indices
    assert np.array_equal(unsorted.toarray(), good)
    with h5py.File(os.path.join(OUT, "csr_duplicate_indices.h5ad"), "r") as f:
        assert list(f["X/indices"][:2]) == [0, 0]
    print("wrote", ", ".join(sorted(os.listdir(OUT))))


if __name__ == "__main__":
    main()
