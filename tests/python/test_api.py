"""The Python API (`import celltyper`) against the command line on the same data and models.

Run by ctest (PythonApi.Pytest) with PYTHONPATH=build/python; CELLTYPER_CLI names the command,
CELLTYPER_SHARED_DATA the real datasets (tests that need them skip when absent)."""
import contextlib
import json
import logging
import os
import re
import subprocess
import types
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

anndata = pytest.importorskip("anndata")
import celltyper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("CELLTYPER_CLI", os.path.join(ROOT, "build", "celltyper"))
DATA = os.environ.get("CELLTYPER_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
PBMC3K = os.path.join(DATA, "pbmc3k-seurat-labels", "pbmc3k_seurat_annotated.h5ad")
PBMC68K = os.path.join(DATA, "pbmc68k_reduced", "pbmc68k_reduced_with_counts.h5ad")
LABEL_MAP = os.path.join(DATA, "label_map_to_cell_ontology.tsv")
SAVERCAT = os.path.join(DATA, "savercat-pbmc-3tech", "pbmc_prep_3tech.h5ad")
STORE = os.path.join(ROOT, "build", "share", "celltyper", "gene_embeddings.h5")

needs_data = pytest.mark.skipif(not (os.path.exists(PBMC3K) and os.path.exists(PBMC68K)), reason="../shared/data is absent")
needs_store = pytest.mark.skipif(not os.path.exists(STORE), reason="no default gene store (run scripts/setup.sh)")


def cli(*args):
    result = subprocess.run([CLI, "--quiet", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def pbmc3k():
    return anndata.read_h5ad(PBMC3K)


@pytest.fixture(scope="module")
def pbmc68k():
    return anndata.read_h5ad(PBMC68K)


def test_version_and_exports():
    assert celltyper.__version__
    for name in ("annotate", "train", "load_model", "embed", "evaluate", "cv", "genes"):
        assert hasattr(celltyper, name)


# ---- results identical to the command line -----------------------------------------------------

ROUTES = [
    ("logreg", "expression", []),
    ("knn", "expression", []),
    ("mlp", "expression", ["--epochs", "5"]),
    ("xgboost", "expression", ["--n-estimators", "10"]),
    ("logreg", "genept", []),
    ("knn", "genept", []),
    ("mlp", "genept", ["--epochs", "5"]),
    ("xgboost", "genept", ["--n-estimators", "10"]),
]


@needs_data
@pytest.mark.parametrize("classifier,features,extra", ROUTES)
def test_annotate_equals_cli(tmp_path, pbmc68k, classifier, features, extra):
    if features == "genept" and not os.path.exists(STORE):
        pytest.skip("no default gene store")
    model_path = str(tmp_path / "model.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--classifier", classifier, "--features", features,
        "--threads", "2", "--out", model_path, *extra)
    out = str(tmp_path / "annotated.h5ad")
    cli("annotate", "--model", model_path, "--input", PBMC68K, "--layer", "counts", "--top-k", "2", "--out", out)
    expected = anndata.read_h5ad(out)

    query = pbmc68k.copy()
    result = celltyper.annotate(query, model=model_path, layer="counts", top_k=2)
    assert list(result.labels.astype(str)) == list(expected.obs["celltyper_label"].astype(str))
    assert list(query.obs["celltyper_label"].astype(str)) == list(expected.obs["celltyper_label"].astype(str))
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected.obsm["celltyper_probabilities"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(query.obs["celltyper_score"].to_numpy(), expected.obs["celltyper_score"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(query.obs["celltyper_gene_coverage"].to_numpy(), expected.obs["celltyper_gene_coverage"].to_numpy(),
                               atol=1e-6)
    assert list(query.obs["celltyper_top2_label"].astype(str)) == list(expected.obs["celltyper_top2_label"].astype(str))
    assert list(query.uns["celltyper_probability_classes"]) == list(expected.uns["celltyper_probability_classes"])
    # the similarity check: every model with a reference sample carries type profiles (every
    # classifier, both feature routes since session 32)
    np.testing.assert_allclose(query.obs["celltyper_similarity"].to_numpy(), expected.obs["celltyper_similarity"].to_numpy(), atol=1e-6)
    assert query.obs["celltyper_unlike_reference"].dtype == bool
    assert (query.obs["celltyper_unlike_reference"].to_numpy() == expected.obs["celltyper_unlike_reference"].to_numpy()).all()
    assert result.unlike_reference.mean() < 0.05  # PBMCs under a PBMC model


@needs_data
def test_train_in_memory_equals_train_from_file(tmp_path, pbmc3k, pbmc68k):
    model_path = str(tmp_path / "cli.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--label-map", LABEL_MAP, "--label-dataset",
        "pbmc3k-seurat-labels", "--out", model_path)
    model = celltyper.train(pbmc3k, label="celltype", label_map=LABEL_MAP, label_dataset="pbmc3k-seurat-labels")
    assert model.classes == celltyper.load_model(model_path).classes
    assert model.features == "expression" and model.classifier == "logreg"
    assert "CL:0000236" in model.cl_ids  # B cell
    assert 0.8 < model.validation["accuracy"] <= 1.0
    saved = str(tmp_path / "python.h5")
    model.save(saved)
    from_file = celltyper.annotate(pbmc68k.copy(), model=model_path, layer="counts", inplace=False)
    in_memory = celltyper.annotate(pbmc68k.copy(), model=model, layer="counts", inplace=False)
    reloaded = celltyper.annotate(pbmc68k.copy(), model=saved, layer="counts", inplace=False)
    np.testing.assert_allclose(in_memory.probabilities.to_numpy(), from_file.probabilities.to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(reloaded.probabilities.to_numpy(), in_memory.probabilities.to_numpy())
    assert in_memory.ontology_ids is not None


@needs_data
def test_cellxgene_labels_bring_their_ontology_ids_as_in_the_cli(tmp_path, pbmc3k, monkeypatch):
    """obs cell_type (CL names) with cell_type_ontology_term_id beside it: no label map needed."""
    # (the ontology the module finds is the one setup installed, from any working directory)
    monkeypatch.delenv("CELLTYPER_ONTOLOGY", raising=False)
    monkeypatch.chdir(tmp_path)
    import csv
    rows = [r for r in csv.DictReader(open(LABEL_MAP), delimiter="\t") if r["dataset"] == "pbmc3k-seurat-labels"]
    ids = {r["label"]: r["cl_id"] for r in rows}
    names = {r["label"]: r["cl_label"] for r in rows}
    cxg = pbmc3k[::4].copy()
    label = cxg.obs["celltype"].astype(str)
    cxg.obs = cxg.obs.assign(cell_type=label.map(names).astype("category"), cell_type_ontology_term_id=label.map(ids).astype("category"))
    path = str(tmp_path / "cxg.h5ad")
    cxg.write_h5ad(path)
    model_path = str(tmp_path / "cli.h5")
    cli("train", "--reference", path, "--label", "obs:cell_type", "--out", model_path)
    model = celltyper.train(cxg, label="cell_type", validation_fraction=0)
    assert model.cl_ids == celltyper.load_model(model_path).cl_ids
    assert model.cl_ids == [ids[next(k for k, v in names.items() if v == c)] for c in model.classes]
    # Reference mode too, and --hierarchical then works on its own.
    result = celltyper.annotate(cxg.copy(), reference=cxg, label="cell_type", hierarchical=True, inplace=False)
    assert result.ontology_ids.astype(str).str.startswith("CL:").all()
    # Each id's Cell Ontology name beside it (obs celltyper_ontology_name, as CELLxGENE's cell_type): a flat model's classes are these names.
    annotated = cxg.copy()
    flat = celltyper.annotate(annotated, model=model)
    named = dict(zip(ids.values(), names.values()))
    assert (flat.ontology_names.astype(str) == flat.ontology_ids.astype(str).map(named)).all()
    assert (annotated.obs["celltyper_ontology_name"].astype(str) == annotated.obs["celltyper_label"].astype(str)).all()


@needs_data
def test_reference_mode_harmonizes_references_labelled_at_two_depths(pbmc3k):
    """annotate(reference=[fine, coarse], harmonize_labels=True): a coarse 'T cell' trains as the T classes below it, no class of its own."""
    fine = pbmc3k[0::2].copy()
    coarse = pbmc3k[1::2].copy()
    t_cells = {"Naive CD4 T", "Memory CD4 T", "CD8 T"}
    coarse.obs["celltype"] = [("T cell" if str(label) in t_cells else str(label)) for label in coarse.obs["celltype"]]
    pooled = celltyper.annotate(pbmc3k[::5].copy(), reference=[fine, coarse], label="celltype", label_map=LABEL_MAP,
                                label_dataset="pbmc3k-seurat-labels", harmonize_labels=True, inplace=False)
    assert "T cell" not in pooled.model.classes and len(pooled.model.classes) == 9
    flat = celltyper.annotate(pbmc3k[::5].copy(), reference=[fine, coarse], label="celltype", label_map=LABEL_MAP,
                              label_dataset="pbmc3k-seurat-labels", inplace=False)
    assert "T cell" in flat.model.classes
    with pytest.raises(ValueError, match="reference mode"):
        celltyper.annotate(pbmc3k[::5].copy(), model=pooled.model, harmonize_labels=True)


def cellxgene_layout(cells):
    """(counts, cxg): the cells' counts as CSR float32, and a copy laid out as CELLxGENE publishes
    (log1p-CP10k in X, the counts in raw.X)."""
    counts = cells.copy()
    counts.X = sp.csr_matrix(counts.X, dtype=np.float32)
    cxg = counts.copy()
    cxg.raw = counts.copy()
    x = sp.diags(1e4 / np.asarray(counts.X.sum(axis=1)).ravel()) @ counts.X
    x.data = np.log1p(x.data)
    cxg.X = sp.csr_matrix(x, dtype=np.float32)
    return counts, cxg


@needs_data
def test_cellxgene_layout_reads_the_counts_in_raw_as_in_the_cli(tmp_path, pbmc3k, caplog):
    """Log-normalised X with the counts in raw.X: with no layer= the counts are read (a note on
    the "celltyper" logger, no warning: it is the expected layout), so the model and the labels
    are those of the counts; layer='X' reads X."""
    import warnings
    counts, cxg = cellxgene_layout(pbmc3k[::3])
    note = r"X looks log-normalized and AnnData\.raw\.X holds raw counts: AnnData\.raw\.X read"
    with caplog.at_level(logging.INFO, logger="celltyper"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = celltyper.train(cxg, label="celltype")
    assert re.search(note, caplog.text), caplog.text
    assert not [w for w in caught if "raw counts" in str(w.message)], [str(w.message) for w in caught]  # (a note, not a warning)
    plain = celltyper.train(counts, label="celltype")
    assert model.validation == plain.validation
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="celltyper"):
        labels = celltyper.annotate(cxg.copy(), model=model, inplace=False).labels
    assert re.search(note, caplog.text), caplog.text
    assert list(labels.astype(str)) == list(celltyper.annotate(counts.copy(), model=plain, inplace=False).labels.astype(str))
    # The command line reads the file's raw/X the same way.
    path, model_path, out = str(tmp_path / "cxg.h5ad"), str(tmp_path / "cli.h5"), str(tmp_path / "out.h5ad")
    cxg.write_h5ad(path)
    cli("train", "--reference", path, "--label", "obs:celltype", "--out", model_path)
    cli("annotate", "--model", model_path, "--input", path, "--out", out)
    assert list(anndata.read_h5ad(out).obs["celltyper_label"].astype(str)) == list(labels.astype(str))
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        celltyper.train(cxg, label="celltype", layer="X", augment_depth=False)
    assert not [w for w in caught if "raw counts" in str(w.message)], [str(w.message) for w in caught]


@needs_data
def test_a_models_provenance_names_the_anndata_matrix_each_reference_gave(tmp_path, pbmc3k):
    """The provenance says which AnnData matrix was read ("raw/X", "layers/NAME", "X"), as a model
    trained on the file by the command line does, and the matrix asked for ("auto", "raw", a layer)."""
    counts, cxg = cellxgene_layout(pbmc3k[::3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = celltyper.train(cxg, label="celltype", augment_depth=False).provenance
        raw = celltyper.train(cxg, label="celltype", use_raw=True, augment_depth=False).provenance
        logged = celltyper.train(cxg, label="celltype", layer="X", augment_depth=False).provenance
        layered = counts.copy()
        layered.layers["umis"] = counts.X.copy()
        layer = celltyper.train(layered, label="celltype", layer="umis", augment_depth=False).provenance
        mode = celltyper.annotate(counts.copy(), reference=cxg, label="celltype", inplace=False).model.provenance
    assert (auto["matrix"], auto["references"][0]["matrix"]) == ("auto", "raw/X")
    assert "AnnData.raw.X: raw/X looks raw-counts" in auto["references"][0]["normalization_reason"]
    assert (raw["matrix"], raw["references"][0]["matrix"]) == ("raw", "raw/X")
    assert (logged["matrix"], logged["references"][0]["matrix"]) == ("X", "X")
    assert (layer["matrix"], layer["references"][0]["matrix"]) == ("umis", "layers/umis")
    assert (mode["matrix"], mode["references"][0]["matrix"]) == ("auto", "raw/X")
    # The command line on the same AnnData written to a file names the same matrix.
    path, model_path = str(tmp_path / "cxg.h5ad"), str(tmp_path / "cli.h5")
    cxg.write_h5ad(path)
    cli("train", "--reference", path, "--label", "obs:celltype", "--no-augment-depth", "--out", model_path)
    assert celltyper.load_model(model_path).provenance["references"][0]["matrix"] == "raw/X"


@needs_data
def test_an_empty_x_defers_to_the_counts_layer_as_in_the_cli(pbmc3k, caplog):
    """X an all-zero placeholder beside layers['counts']: the counts are read (with a warning),
    as the command line does, and a CP10k X is normalised as counts; neither leaves cells empty."""
    counts = pbmc3k[::3].copy()
    counts.X = sp.csr_matrix(counts.X, dtype=np.float32)
    model = celltyper.train(counts, label="celltype", augment_depth=False)
    expected = list(celltyper.annotate(counts.copy(), model=model, inplace=False).labels.astype(str))
    placeholder = counts.copy()
    placeholder.layers["counts"] = counts.X.copy()
    placeholder.X = sp.csr_matrix(counts.shape, dtype=np.float32)
    with caplog.at_level(logging.INFO, logger="celltyper"):
        labels = celltyper.annotate(placeholder, model=model, inplace=False).labels
    assert "X looks empty and AnnData.layers['counts'] holds raw counts" in caplog.text, caplog.text
    assert list(labels.astype(str)) == expected
    cp10k = counts.copy()
    cp10k.X = sp.csr_matrix(sp.diags(1e4 / np.asarray(counts.X.sum(axis=1)).ravel()) @ counts.X, dtype=np.float32)
    labels = list(celltyper.annotate(cp10k, model=model, inplace=False).labels.astype(str))
    assert sum(a == b for a, b in zip(labels, expected)) >= len(expected) - 3


@needs_data
def test_square_roots_and_asinh_of_counts_are_read_back_as_the_counts(pbmc3k):
    """sqrt(counts) and asinh(counts) look logged (CellTypist refuses anything but log1p of
    CP10k): their whole squares / sinh say what they are, and they are read back as the counts,
    so they get the counts' labels, as a reference and as a query; no warning. Scaled values
    raise, naming a generic layer (the engine sees only the matrix given)."""
    counts = pbmc3k[::3].copy()
    counts.X = sp.csr_matrix(counts.X, dtype=np.float32)
    model = celltyper.train(counts, label="celltype", augment_depth=False)
    expected = celltyper.annotate(counts.copy(), model=model, inplace=False)
    for transform in (np.sqrt, np.arcsinh):
        rooted = counts.copy()
        rooted.X.data = transform(rooted.X.data).astype(np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = celltyper.annotate(rooted, model=model, inplace=False)
            assert not [str(w.message) for w in caught if "less accurate labels" in str(w.message)]
        assert (got.labels.values == expected.labels.values).all()
        np.testing.assert_allclose(got.scores.values, expected.scores.values, atol=1e-5)
    rooted = counts.copy()
    rooted.X.data = np.sqrt(rooted.X.data).astype(np.float32)
    from_roots = celltyper.train(rooted, label="celltype", augment_depth=False)
    got = celltyper.annotate(counts.copy(), model=from_roots, inplace=False)
    assert (got.labels.values == expected.labels.values).all()
    # Scaled values: the engine sees only the matrix given; the message names the AnnData's others
    # (as the command line names a file's), or a placeholder when it has none
    scaled = counts.copy()
    scaled.layers["counts"] = counts.X.copy()
    scaled.X = sp.csr_matrix(counts.X, dtype=np.float32)
    scaled.X.data = scaled.X.data - 3.0
    with pytest.raises(ValueError, match=r"negative values cannot be used; read a matrix of counts or log-normalised values "
                                         r"\(layer='counts': this AnnData has them\)"):
        celltyper.annotate(scaled, model=model, layer="X")
    del scaled.layers["counts"]
    with pytest.raises(ValueError, match=r"read a matrix of counts or log-normalised values \(layer=<NAME>\)"):
        celltyper.annotate(scaled, model=model, layer="X")


@needs_data
def test_markers_are_each_types_textbook_genes_as_inspect_lists_them(tmp_path, pbmc3k):
    """Model.markers(n): a DataFrame of each type's n genes, best first, the same as `celltyper
    inspect MODEL --markers n --json`; a model without reference cells raises ValueError."""
    counts = pbmc3k[::2].copy()
    model = celltyper.train(counts, label="celltype", augment_depth=False)
    table = model.markers(5)
    assert list(table.columns) == ["class", "cl_id", "rank", "gene", "mean", "mean_elsewhere", "fraction", "fraction_elsewhere"]
    assert sorted(set(table["class"])) == sorted(model.classes)
    top = {c: list(group.sort_values("rank")["gene"]) for c, group in table.groupby("class")}
    assert {"CD79A", "MS4A1"} <= set(top["B"]), top["B"]
    assert {"GNLY", "NKG7"} <= set(top["NK"]), top["NK"]
    assert (table["mean"] > table["mean_elsewhere"]).all() and (table["fraction"] >= 0.2).all()
    path = str(tmp_path / "m.h5")
    model.save(path)
    listed = json.loads(cli("inspect", path, "--markers", "5", "--json").stdout)["markers"]
    assert {c["class"]: [g["symbol"] for g in c["genes"]] for c in listed} == top
    with pytest.raises(ValueError, match=r"the model keeps no reference cells \(trained with reference_sample=0, or from"):
        celltyper.train(counts, label="celltype", augment_depth=False, reference_sample=0).markers(3)
    with pytest.raises(ValueError, match="n=0 must be at least 1"):
        model.markers(0)


@needs_data
def test_scanpys_usual_object_reads_raw_when_x_is_cut_to_highly_variable_genes(pbmc3k, caplog):
    """`adata.raw = adata` after log1p(CP10k), then X (and its counts layer) cut to 500 highly
    variable genes and scaled: raw.X, with every gene, is read (with a warning), as the command
    line does, and the labels are those of the counts."""
    counts = pbmc3k[::3].copy()
    counts.X = sp.csr_matrix(counts.X, dtype=np.float32)
    model = celltyper.train(counts, label="celltype", augment_depth=False)
    expected = list(celltyper.annotate(counts.copy(), model=model, inplace=False).labels.astype(str))
    logged = counts.copy()
    logged.X = sp.csr_matrix(sp.diags(1e4 / np.asarray(counts.X.sum(axis=1)).ravel()) @ counts.X, dtype=np.float32)
    logged.X.data = np.log1p(logged.X.data)
    logged.raw = logged
    hvg = np.sort(np.argsort(-np.asarray(logged.X.power(2).mean(axis=0)).ravel())[:500])
    cut = logged[:, hvg].copy()
    cut.layers["counts"] = counts.X[:, hvg]
    x = cut.X.toarray()
    cut.X = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="celltyper"):
        labels = list(celltyper.annotate(cut, model=model, inplace=False).labels.astype(str))
    assert "X measures 500 genes and AnnData.raw.X 13714 (X cut to a gene subset" in caplog.text, caplog.text
    assert sum(a == b for a, b in zip(labels, expected)) >= len(expected) - 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subset = list(celltyper.annotate(cut, model=model, layer="counts", inplace=False).labels.astype(str))
    assert sum(a == b for a, b in zip(subset, expected)) < sum(a == b for a, b in zip(labels, expected))


@needs_data
@pytest.mark.parametrize("features", ["expression", pytest.param("genept", marks=needs_store)])
def test_a_reference_cut_to_its_variable_genes_annotates_a_query_of_every_gene_as_that_query_cut_to_them(pbmc3k, features):
    """`adata[:, adata.var.highly_variable]` as the reference (log1p(CP10k) over every gene, cut
    to 2,000 genes, no raw): the other cells measuring every gene get the probabilities of the
    same cells cut to those genes (a query cell's library is summed over the reference's genes),
    and mostly their labels."""
    counts = sp.csr_matrix(pbmc3k.X, dtype=np.float32)
    logged = sp.csr_matrix(sp.diags(1e4 / np.asarray(counts.sum(axis=1)).ravel()) @ counts, dtype=np.float32)
    logged.data = np.log1p(logged.data)
    mean = np.asarray(logged.mean(axis=0)).ravel()
    variance = np.asarray(logged.power(2).mean(axis=0)).ravel() - mean ** 2
    genes = np.sort(np.argsort(-variance)[:2000])
    reference = anndata.AnnData(X=logged[::2][:, genes], obs=pbmc3k.obs[["celltype"]].iloc[::2].copy(), var=pbmc3k.var.iloc[genes].copy())
    query = anndata.AnnData(X=counts[1::2], obs=pbmc3k.obs[["celltype"]].iloc[1::2].copy(), var=pbmc3k.var.copy())
    model = celltyper.train(reference, label="celltype", features=features, augment_depth=False)
    whole = celltyper.annotate(query, model=model, inplace=False)
    cut = celltyper.annotate(query[:, genes].copy(), model=model, inplace=False)
    np.testing.assert_allclose(whole.probabilities.to_numpy(), cut.probabilities.to_numpy(), atol=1e-5)
    truth = query.obs["celltype"].astype(str).to_numpy()
    assert np.mean(whole.labels.astype(str).to_numpy() == truth) > 0.8


@needs_data
def test_depth_augmentation_is_the_default_and_can_be_turned_off_as_in_the_cli(tmp_path, pbmc3k, pbmc68k):
    augmented = celltyper.train(pbmc3k, label="celltype")
    assert augmented.summary["n_cells"] == pbmc3k.n_obs
    assert 0.9 * pbmc3k.n_obs < augmented.summary["n_thinned_copies"] <= pbmc3k.n_obs
    plain = celltyper.train(pbmc3k, label="celltype", augment_depth=False)
    assert plain.summary["n_thinned_copies"] == 0
    capped = celltyper.train(pbmc3k, label="celltype", augment_depth_max_copies=500)
    assert 450 < capped.summary["n_thinned_copies"] <= 500
    with pytest.raises(ValueError, match="augment_depth_max_copies"):
        celltyper.train(pbmc3k, label="celltype", augment_depth_max_copies=-1)
    model_path = str(tmp_path / "plain.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--no-augment-depth", "--out", model_path)
    from_file = celltyper.annotate(pbmc68k.copy(), model=model_path, layer="counts", inplace=False)
    in_memory = celltyper.annotate(pbmc68k.copy(), model=plain, layer="counts", inplace=False)
    np.testing.assert_allclose(in_memory.probabilities.to_numpy(), from_file.probabilities.to_numpy(), atol=1e-6, rtol=0)
    other = celltyper.annotate(pbmc68k.copy(), model=augmented, layer="counts", inplace=False)
    assert np.abs(other.probabilities.to_numpy() - in_memory.probabilities.to_numpy()).max() > 1e-3


@needs_data
def test_pooled_references_at_mixed_depths_equal_cli(tmp_path, pbmc3k, pbmc68k):
    # pbmc3k labels fine types; savercat "T/NK cells" (lymphocyte) and "Monocytes" (monocyte):
    # coarse terms that train as the summed probability of pbmc3k's classes below them.
    if not os.path.exists(SAVERCAT):
        pytest.skip("savercat is absent")
    model_path = str(tmp_path / "pooled.h5")
    cli("train", "--reference", f"{PBMC3K},{SAVERCAT}", "--label", "obs:celltype", "--label-map", LABEL_MAP, "--harmonize-labels",
        "--out", model_path)
    savercat = anndata.read_h5ad(SAVERCAT)
    model = celltyper.train([pbmc3k, savercat], label="celltype", label_map=LABEL_MAP, harmonize_labels=True)
    assert model.classes == celltyper.load_model(model_path).classes
    assert "lymphocyte" not in model.classes and "monocyte" not in model.classes
    assert "B cell" in model.classes and "natural killer cell" in model.classes
    from_file = celltyper.annotate(pbmc68k.copy(), model=model_path, layer="counts", inplace=False)
    in_memory = celltyper.annotate(pbmc68k.copy(), model=model, layer="counts", inplace=False)
    np.testing.assert_allclose(in_memory.probabilities.to_numpy(), from_file.probabilities.to_numpy(), atol=1e-6, rtol=0)


@needs_data
def test_references_labelled_in_differently_named_columns_equal_the_cli(tmp_path, pbmc3k, pbmc68k):
    # pbmc3k's obs 'celltype', pbmc68k's 'bulk_labels': label= a list, each reading the first it has.
    with pytest.raises(ValueError, match=r"reference 2: no obs column 'celltype' .*label=\['celltype', 'COLUMN'\], each reference reading"):
        celltyper.train([pbmc3k, pbmc68k], label="celltype")
    model_path = str(tmp_path / "two_columns.h5")
    cli("train", "--reference", f"{PBMC3K},{PBMC68K}", "--label", "obs:celltype,obs:bulk_labels", "--out", model_path)
    model = celltyper.train({"pbmc3k": pbmc3k, "pbmc68k": pbmc68k}, label=["celltype", "obs:bulk_labels"])
    assert model.provenance["label_column"] == "obs:celltype,obs:bulk_labels"
    assert [r["label_column"] for r in model.provenance["references"]] == ["obs:celltype", "obs:bulk_labels"]
    assert model.classes == celltyper.load_model(model_path).classes
    assert "CD14+ Mono" in model.classes and "CD14+ Monocyte" in model.classes  # (each reference's own labels)
    query = pbmc3k[1::2].copy()
    result = celltyper.annotate(query, reference=[pbmc3k[::2].copy(), pbmc68k], label=["celltype", "bulk_labels"], inplace=False)
    assert (result.labels.astype(str).to_numpy() == query.obs["celltype"].astype(str).to_numpy()).mean() > 0.8
    with pytest.raises(ValueError, match="no obs column 'cell_type' nor 'labels'"):
        celltyper.cv([pbmc3k, pbmc68k], label=["cell_type", "labels"], group="file")
    with pytest.raises(TypeError, match="label is named by a str"):
        celltyper.train(pbmc3k, label=3)
    with pytest.raises(ValueError, match="a column whose name holds a comma cannot be one of several label columns"):
        celltyper.train([pbmc3k, pbmc68k], label=["type, fine", "bulk_labels"])


@needs_data
def test_an_annotated_anndata_records_the_run_as_the_cli_does(tmp_path, pbmc3k):
    model_path = str(tmp_path / "even.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--out", model_path)
    query = pbmc3k[1::2].copy()
    celltyper.annotate(query, model=model_path, min_score=0.3)
    record = json.loads(query.uns["celltyper_annotation"])
    assert record["models"][0]["model"] == model_path and record["models"][0]["classifier"] == "logreg"
    assert record["options"]["min_score"] == 0.3 and sum(record["label_counts"].values()) == query.n_obs
    assert record["celltyper_version"] == celltyper.__version__
    other = pbmc3k[1::2].copy()
    celltyper.annotate(other, reference=pbmc3k[::2].copy(), label="celltype")
    assert json.loads(other.uns["celltyper_annotation"])["models"][0]["model"] == "reference mode"


@needs_data
def test_reference_mode_equals_cli(tmp_path, pbmc3k, pbmc68k):
    out = str(tmp_path / "ref.h5ad")
    cli("annotate", "--reference", PBMC3K, "--label", "obs:celltype", "--input", PBMC68K, "--layer", "counts", "--out", out)
    expected = anndata.read_h5ad(out)
    query = pbmc68k.copy()
    result = celltyper.annotate(query, reference=pbmc3k, label="obs:celltype", layer="counts")
    assert list(result.labels.astype(str)) == list(expected.obs["celltyper_label"].astype(str))
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected.obsm["celltyper_probabilities"], atol=1e-6, rtol=0)
    assert result.model is not None and result.model.classes == sorted(set(pbmc3k.obs["celltype"].astype(str)))


@needs_data
def test_a_padded_sample_of_a_joined_anndata_is_annotated_on_its_own_genes_as_in_the_cli(tmp_path, pbmc3k, pbmc68k):
    # pbmc68k_reduced's 765 genes joined to pbmc3k cells (anndata.concat(join="outer")): its cells
    # get the labels of the 765-gene object, as `celltyper annotate` gives them from the file.
    model = str(tmp_path / "m.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--out", model)
    own = anndata.AnnData(sp.csr_matrix(pbmc68k.layers["counts"], dtype=np.float32), obs=pbmc68k.obs[[]].copy(), var=pbmc68k.var[[]].copy())
    whole = pbmc3k[::9].copy()
    whole = anndata.AnnData(sp.csr_matrix(whole.X, dtype=np.float32), obs=whole.obs[[]].copy(), var=whole.var[[]].copy())
    joined = anndata.concat({"pbmc3k": whole, "pbmc68k": own}, join="outer", label="sample", index_unique="-")
    joined.X = sp.csr_matrix(joined.X, dtype=np.float32)
    path = str(tmp_path / "joined.h5ad")
    joined.write_h5ad(path)
    out = str(tmp_path / "out.h5ad")
    cli("annotate", "--model", model, "--input", path, "--out", out)
    expected = anndata.read_h5ad(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = celltyper.annotate(joined, model, inplace=False)
    padded_warnings = [str(w.message) for w in caught if "a sample padded with zeros" in str(w.message)]
    assert len(padded_warnings) == 1 and "group='none' reads the file as one panel" in padded_warnings[0], padded_warnings
    assert [(g["column"], g["level"], g["n_cells"]) for g in result.panel_groups] == [("sample", "pbmc68k", 700)]
    assert list(result.labels.astype(str)) == list(expected.obs["celltyper_label"].astype(str))
    alone = celltyper.annotate(own, model, inplace=False)
    padded = result.labels[joined.obs["sample"] == "pbmc68k"].astype(str).to_numpy()
    assert (padded == alone.labels.astype(str).to_numpy()).mean() >= 0.99
    one_panel = celltyper.annotate(joined, model, group="none", inplace=False)
    assert one_panel.panel_groups == []
    assert (one_panel.labels[joined.obs["sample"] == "pbmc68k"].astype(str).to_numpy() == alone.labels.astype(str).to_numpy()).mean() < 0.95
    named = celltyper.annotate(joined, model, group="obs:sample", inplace=False)
    assert list(named.labels.astype(str)) == list(result.labels.astype(str))
    # a named column: a summary per sample, its label counts those of its cells
    assert [(s["level"], s["n_cells"]) for s in named.samples] == [("pbmc3k", 294), ("pbmc68k", 700)]
    assert named.samples[1]["label_counts"] == named.labels[joined.obs["sample"].to_numpy() == "pbmc68k"].astype(str).value_counts().to_dict()
    assert result.samples == []
    # in the column's category order, as the command line lists them (not first-seen order)
    reordered = joined.copy()
    reordered.obs["sample"] = reordered.obs["sample"].cat.reorder_categories(["pbmc68k", "pbmc3k"])
    reordered_path = str(tmp_path / "reordered.h5ad")
    reordered.write_h5ad(reordered_path)
    listed = json.loads(cli("annotate", "--model", model, "--input", reordered_path, "--group", "obs:sample", "--csv",
                            str(tmp_path / "reordered.csv"), "--json").stdout)
    assert [s["level"] for s in listed["samples"]] == ["pbmc68k", "pbmc3k"]
    assert [s["level"] for s in celltyper.annotate(reordered, model, group="sample", inplace=False).samples] == ["pbmc68k", "pbmc3k"]
    # a notebook's last line shows a summary, not every Series
    text = repr(result)
    assert text.startswith("AnnotationResult(994 cells: ") and "padded sample" in text and len(text.splitlines()) == 1


@needs_data
def test_evaluate_equals_cli(tmp_path, pbmc68k):
    model = str(tmp_path / "m.h5")
    cli("train", "--reference", PBMC3K, "--label", "obs:celltype", "--label-map", LABEL_MAP, "--label-dataset", "pbmc3k-seurat-labels",
        "--out", model)
    out = str(tmp_path / "a.h5ad")
    cli("annotate", "--model", model, "--input", PBMC68K, "--layer", "counts", "--out", out)
    expected = json.loads(cli("evaluate", "--input", out, "--truth", "obs:bulk_labels", "--label-map", LABEL_MAP, "--label-dataset",
                              "pbmc68k_reduced", "--json", "-").stdout)
    query = pbmc68k.copy()
    celltyper.annotate(query, model=model, layer="counts")
    metrics = celltyper.evaluate(query, truth="bulk_labels", label_map=LABEL_MAP, label_dataset="pbmc68k_reduced")
    for key in ("accuracy", "n_cells"):
        assert metrics["overall"][key] == pytest.approx(expected["overall"][key], abs=1e-9)
    assert metrics["overall"]["macro"] == pytest.approx(expected["overall"]["macro"], abs=1e-9)
    assert metrics["overall"]["ontology"]["hierarchical_f1"] == pytest.approx(expected["overall"]["ontology"]["hierarchical_f1"], abs=1e-9)
    assert metrics["compared_on"] == expected["compared_on"]
    # The cell map, as the command's: the same obsm matrix chosen, the same projection.
    assert expected["embedding"] is not None
    assert {k: metrics["embedding"][k] for k in ("source", "method", "n_cells", "n_points")} == \
        {k: expected["embedding"][k] for k in ("source", "method", "n_cells", "n_points")}
    assert metrics["embedding"]["explained_variance_ratio"] == pytest.approx(expected["embedding"]["explained_variance_ratio"], abs=1e-5)
    assert celltyper.evaluate(query, truth="bulk_labels", embedding="none", use_ontology=False)["embedding"] is None
    with pytest.raises(ValueError, match="no obsm matrix 'X_missing' for the cell map"):
        celltyper.evaluate(query, truth="bulk_labels", embedding="obsm:X_missing")
    # "auto" that cannot be drawn (a NaN in X_pca) warns, as the command does; named, it is an error.
    broken = query.copy()
    del broken.obsm["celltyper_probabilities"]
    broken.obsm["X_pca"] = broken.obsm["X_pca"].copy()
    broken.obsm["X_pca"][0, 0] = np.nan
    with pytest.warns(UserWarning, match="no cell map: embedding has a non-finite value"):
        assert celltyper.evaluate(broken, truth="bulk_labels", use_ontology=False, probabilities="none")["embedding"] is None
    with pytest.raises(ValueError, match="non-finite value"):
        celltyper.evaluate(broken, truth="bulk_labels", use_ontology=False, probabilities="none", embedding="X_pca")
    # The HTML report of `celltyper evaluate --report`.
    report = tmp_path / "report.html"
    celltyper.evaluate(query, truth="bulk_labels", label_map=LABEL_MAP, label_dataset="pbmc68k_reduced", report=report)
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "Confusion" in html and "obsm:" + expected["embedding"]["source"].split(":")[-1] in html


@needs_data
@needs_store
def _write_vectors(folder, symbols):
    """A TSV of small made-up gene vectors (`genes embed --backend import` reads it)."""
    path = str(folder / "vectors.tsv")
    with open(path, "w") as out:
        out.write("gene\td0\td1\td2\n")
        for i, symbol in enumerate(symbols):
            out.write(f"{symbol}\t{1 + i % 2}\t{i % 3}\t{1 if i == 2 else 0}\n")
    return path


def test_embed_equals_cli(tmp_path, pbmc68k):
    npy = str(tmp_path / "e.npy")
    cli("embed", "--input", PBMC68K, "--layer", "counts", "--out", npy)
    query = pbmc68k.copy()
    values = celltyper.embed(query, layer="counts")
    np.testing.assert_allclose(values, np.load(npy), atol=1e-6, rtol=0)
    assert query.obsm["X_celltyper"].shape == values.shape
    h5ad = str(tmp_path / "e.h5ad")
    cli("embed", "--input", PBMC68K, "--layer", "counts", "--out", h5ad)
    written = json.loads(anndata.read_h5ad(h5ad).uns["celltyper_embedding"])
    given = json.loads(query.uns["celltyper_embedding"])
    assert given.keys() == written.keys() and given["dims"] == written["dims"], (given, written)
    # The flag of cells without an expressed gene with a vector, as the command line writes it.
    assert query.obs["celltyper_embedding_empty"].dtype == bool
    assert (query.obs["celltyper_embedding_empty"].to_numpy() == anndata.read_h5ad(h5ad).obs["celltyper_embedding_empty"].to_numpy()).all()
    # A store covering a few genes: refused by default (the median cell's share), with min_coverage= named; allowed below it.
    few = str(tmp_path / "few.h5")
    cli("genes", "embed", "--backend", "import", "--input", _write_vectors(tmp_path, ["CD3E", "LYZ", "MS4A1", "NKG7"]), "--out", few)
    with pytest.raises(ValueError, match=r"a store of a few genes needs a lower floor, e.g. min_coverage=0\.01\)"):
        celltyper.embed(pbmc68k.copy(), layer="counts", genes=few)
    sparse = pbmc68k.copy()
    values = celltyper.embed(sparse, layer="counts", genes=few, min_coverage=0)
    assert values.shape == (pbmc68k.n_obs, 3)
    assert sparse.obs["celltyper_embedding_empty"].sum() == (np.abs(values).sum(axis=1) == 0).sum() > 0


@needs_store
def test_gene_neighbors():
    table = celltyper.genes.neighbors("CD3E", k=10)
    assert list(table.columns) == ["symbol", "entrez_id", "similarity"]
    assert len(table) == 10 and "CD3E" not in set(table["symbol"])
    assert (np.diff(table["similarity"].to_numpy()) <= 1e-7).all()
    with pytest.raises(ValueError, match="no vector"):
        celltyper.genes.neighbors("NOT_A_GENE_XYZ")


# ---- matrix layouts: every accepted layout gives the same answer ---------------------------------

@needs_data
def test_layouts_and_dtypes_agree(pbmc3k, pbmc68k):
    model = celltyper.train(pbmc3k, label="celltype", validation_fraction=0)
    counts = pbmc68k.layers["counts"]
    base = anndata.AnnData(X=sp.csr_matrix(counts, dtype=np.float32), obs=pbmc68k.obs[[]].copy(), var=pbmc68k.var[[]].copy())
    reference = celltyper.annotate(base, model=model, inplace=False).probabilities.to_numpy()
    variants = {
        "csr float64 int64 indices": sp.csr_matrix((base.X.data.astype(np.float64), base.X.indices.astype(np.int64),
                                                     base.X.indptr.astype(np.int64)), shape=base.X.shape),
        "csr int32 values": sp.csr_matrix(base.X, dtype=np.int32),
        "csc": sp.csc_matrix(base.X),
        "dense float32": base.X.toarray(),
        "dense uint16": base.X.toarray().astype(np.uint16),
        "dense Fortran order": np.asfortranarray(base.X.toarray()),
    }
    for name, X in variants.items():
        other = anndata.AnnData(X=X, obs=base.obs.copy(), var=base.var.copy())
        with pytest.warns(UserWarning) if name == "csc" else contextlib.nullcontext():
            got = celltyper.annotate(other, model=model, inplace=False).probabilities.to_numpy()
        np.testing.assert_allclose(got, reference, atol=1e-6, rtol=0, err_msg=name)


@needs_data
def test_backed_float16_repeated_and_warned_as_users_do(tmp_path, pbmc3k, pbmc68k):
    # A user's audit: backed sparse files, float16 matrices, a second annotation over a first,
    # and train's warnings (missing labels) as Python warnings.
    labels = pbmc3k.obs["celltype"].astype(object).copy()
    labels.iloc[::3] = None
    ref = anndata.AnnData(X=pbmc3k.X, obs=pbmc3k.obs[[]].assign(lab=labels.values), var=pbmc3k.var[[]])
    with pytest.warns(UserWarning, match="880 cells without a label in obs:lab left out"):
        model = celltyper.train(ref, label="lab", validation_fraction=0)
    query = anndata.AnnData(X=sp.csr_matrix(pbmc68k.layers["counts"], dtype=np.float32), obs=pbmc68k.obs[[]].copy(), var=pbmc68k.var[[]].copy())
    path = str(tmp_path / "query.h5ad")
    query.write_h5ad(path)
    expected = celltyper.annotate(query, model=model, inplace=False).probabilities.to_numpy()
    backed = anndata.read_h5ad(path, backed="r")
    np.testing.assert_allclose(celltyper.annotate(backed, model=model, inplace=False).probabilities.to_numpy(), expected, atol=1e-6)
    for X in (query.X.astype(np.float16), query.X.toarray().astype(np.float16)):  # counts up to 2048 are exact in float16
        half = anndata.AnnData(X=X, obs=query.obs.copy(), var=query.var.copy())
        np.testing.assert_allclose(celltyper.annotate(half, model=model, inplace=False).probabilities.to_numpy(), expected, atol=1e-6)
    celltyper.annotate(query, model=model, top_k=2)
    assert "celltyper_top2_label" in query.obs
    celltyper.annotate(query, model=model)  # the second annotation's columns only
    assert "celltyper_top2_label" not in query.obs and "celltyper_label" in query.obs
    broken = sp.csr_matrix(query.X)
    broken.indptr = broken.indptr.copy()
    broken.indptr[5] = broken.indptr[6] + 10
    with pytest.raises(ValueError, match="row pointers"):
        celltyper.annotate(anndata.AnnData(X=broken, obs=query.obs.copy(), var=query.var.copy()), model=model)
    empty = anndata.AnnData(X=pbmc3k.X, obs=pbmc3k.obs[[]].assign(lab=[None] * pbmc3k.n_obs), var=pbmc3k.var[[]])
    with pytest.raises(ValueError, match="obs column 'lab' labels no cell"):
        celltyper.train(empty, label="lab")


@needs_data
def test_models_pickle_and_messages_speak_python(pbmc3k, pbmc68k):
    import copy
    import pickle
    model = celltyper.train(pbmc3k, label="celltype", validation_fraction=0)
    query = anndata.AnnData(X=sp.csr_matrix(pbmc68k.layers["counts"], dtype=np.float32), obs=pbmc68k.obs[[]].copy(), var=pbmc68k.var[[]].copy())
    expected = celltyper.annotate(query, model=model, inplace=False).probabilities.to_numpy()
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert other.classes == model.classes and other.summary == model.summary
        np.testing.assert_array_equal(celltyper.annotate(query, model=other, inplace=False).probabilities.to_numpy(), expected)
    with pytest.raises(ValueError, match=r"^min_score=2 is not in \[0, 1\]"):
        celltyper.annotate(query, model=model, min_score=2)
    with pytest.raises(ValueError, match=r"pass allow_low_coverage=True"):
        celltyper.annotate(query[:, :5].copy(), model=model)
    with pytest.raises(TypeError, match="did you mean 'n_genes'"):
        celltyper.train(pbmc3k, label="celltype", n_gene=500)
    # Flags in the engine's messages as each verb's keywords: a switch takes no value, placeholders
    # stay placeholders, sentence punctuation stays outside, another verb's flag names that verb.
    speak = celltyper.train.speak
    assert speak("--harmonize-labels makes the labels terms") == "harmonize_labels=True makes the labels terms"
    assert speak("name them with --label-map TSV (columns label, cl_id)") == "name them with label_map=<TSV> (columns label, cl_id)"
    assert speak("(--gene-pooling impute; --gene-pooling shared trains)") == "(gene_pooling='impute'; gene_pooling='shared' trains)"
    assert speak("annotate --hierarchical cannot place them") == "annotate(hierarchical=True) cannot place them"
    assert speak("give --label obs:COLUMN.") == "give label=<COLUMN>."
    assert celltyper.annotate.speak("--layer X reads X") == "layer='X' reads X"
    assert celltyper.annotate.speak("pass --min-score 0.5.") == "pass min_score=0.5."


# ---- bad input: a clear exception, never a crash -------------------------------------------------

def tiny(X=None, n_obs=30, genes=("CD3E", "CD3D", "MS4A1", "CD79A", "LYZ", "CD14", "NKG7", "GNLY", "PPBP", "FCGR3A")):
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, size=(n_obs, len(genes))).astype(np.float32)) if X is None else X
    obs = {"cell_type": np.array(["T", "B", "Mono"] * (n_obs // 3))}
    import pandas as pd
    return anndata.AnnData(X=X, obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(n_obs)]),
                           var=pd.DataFrame(index=list(genes)))


def test_missing_label_column():
    with pytest.raises(ValueError, match="no obs column 'celltype'"):
        celltyper.train(tiny(), label="celltype")


def test_nan_values_are_refused():
    X = sp.csr_matrix(np.ones((30, 10), dtype=np.float32))
    X.data[5] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        celltyper.train(tiny(X), label="cell_type")
    dense = np.ones((30, 10), dtype=np.float64)
    dense[3, 4] = np.inf
    with pytest.raises(ValueError, match="cell 3 has a non-finite value"):
        celltyper.train(tiny(dense), label="cell_type")


def test_wrong_dtype_is_refused():
    good = tiny()
    complex_x = types.SimpleNamespace(obs=good.obs, var=good.var, X=np.ones((30, 10), dtype=np.complex64), n_obs=30, raw=None, layers={})
    with pytest.raises(ValueError, match="dtype complex64"):
        celltyper.train(complex_x, label="cell_type")
    strings = types.SimpleNamespace(obs=tiny().obs, var=tiny().var, X=np.full((30, 10), "a"), n_obs=30, raw=None, layers={})
    with pytest.raises(ValueError, match="dtype"):
        celltyper.train(strings, label="cell_type")


def test_shape_mismatch_between_x_and_var():
    good = tiny()
    fake = types.SimpleNamespace(obs=good.obs, var=good.var.iloc[:5], X=good.X, n_obs=30, raw=None, layers={})
    with pytest.raises(ValueError, match="30 x 10 but AnnData has 30 cells and 5 genes"):
        celltyper.train(fake, label="cell_type")


def test_malformed_csr_buffers_reach_the_engine_as_value_errors():
    good = tiny()
    X = good.X
    spec = celltyper._dataset(good)
    bad_pointer = dict(spec, indptr=np.concatenate([X.indptr[:-1], [X.indptr[-1] + 5]]).astype(np.int32))
    with pytest.raises(ValueError, match="row pointers end at"):
        celltyper._core.train([dict(bad_pointer, obs={"cell_type": list(good.obs["cell_type"])})], {"label": "cell_type"})
    indices = X.indices.copy()
    indices[0] = 99
    with pytest.raises(ValueError, match="outside"):
        celltyper._core.train([dict(spec, indices=indices, obs={"cell_type": list(good.obs["cell_type"])})], {"label": "cell_type"})
    short = dict(spec, indptr=X.indptr[:-2].copy())
    with pytest.raises(ValueError, match="row pointers have"):
        celltyper._core.train([dict(short, obs={"cell_type": list(good.obs["cell_type"])})], {"label": "cell_type"})


def test_duplicate_indices_are_refused_and_unsorted_ones_sorted_with_a_warning():
    X = sp.csr_matrix((np.array([1, 2, 3], dtype=np.float32), np.array([0, 0, 1]), np.array([0, 3] + [3] * 29)), shape=(30, 10))
    with pytest.raises(ValueError, match="cell 0 has duplicate column indices.*sum_duplicates"):
        celltyper.train(tiny(X), label="cell_type")
    unsorted = sp.csr_matrix((np.array([1, 2], dtype=np.float32), np.array([3, 1]), np.array([0, 2] + [2] * 29)), shape=(30, 10))
    assert not unsorted.has_sorted_indices
    with pytest.warns(UserWarning, match="unsorted column indices"):
        spec = celltyper._dataset(tiny(unsorted))
    assert list(spec["indices"][:2]) == [1, 3]


def test_misspelt_keywords_and_an_anndata_for_a_model_are_named():
    good = tiny()
    with pytest.raises(TypeError, match="unexpected keyword argument 'heirarchical'; did you mean 'hierarchical'"):
        celltyper.annotate(good, "model.h5", heirarchical=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'dim'; did you mean 'dims'"):
        celltyper.embed(good, dim=10)
    for spelling in ("normalize", "normalise"):  # the command line's --normalize, British spelling
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{spelling}'; did you mean 'normalization'"):
            celltyper.embed(good, **{spelling: "auto"})
    with pytest.raises(TypeError, match="model is an AnnData; pass a Model or a model file, or train on the fly with reference="):
        celltyper.annotate(good, good)
    with pytest.raises(TypeError, match="unexpected keyword argument 'zzz'$"):  # nothing close: Python's own message
        celltyper.annotate(good, "model.h5", zzz=1)
    with pytest.raises(FileNotFoundError, match="cannot open gene store /missing.h5: no such file"):
        celltyper.embed(good, genes="/missing.h5")
    with pytest.raises(FileNotFoundError, match="cannot open label map /missing.tsv"):
        celltyper.train(good, label="cell_type", label_map="/missing.tsv")
    # scikit-learn's names for the hyperparameters (CellTypist passes C and max_iter) point at ours
    with pytest.raises(ValueError, match=r"no hyperparameter 'C'; scikit-learn's C is an inverse penalty .*'l2' = 1 / \(C x training cells\)"):
        celltyper.train(good, label="cell_type", C=1.0)
    with pytest.raises(ValueError, match="no hyperparameter 'n_neighbors'; scikit-learn's n_neighbors is 'k'"):
        celltyper.train(good, label="cell_type", classifier="knn", n_neighbors=5)


def test_an_extract_training_matrix_is_sent_to_the_command_line():
    """A `celltyper extract` output holds embeddings, not expression: train() says which command reads it."""
    extracted = tiny()
    extracted.uns["celltyper_extract"] = "{}"
    with pytest.raises(ValueError, match=r"is a `celltyper extract` training matrix .*celltyper train --reference FILE"):
        celltyper.train(extracted, label="cell_type")


def test_annotate_needs_a_model_or_a_reference():
    with pytest.raises(ValueError, match="either model="):
        celltyper.annotate(tiny())
    with pytest.raises(ValueError, match="needs label="):
        celltyper.annotate(tiny(), reference=tiny())
    with pytest.raises(FileNotFoundError, match="/nonexistent/model.h5"):
        celltyper.annotate(tiny(), model="/nonexistent/model.h5")


@needs_data
def test_too_few_genes_is_refused_with_the_fix(pbmc3k):
    model = celltyper.train(pbmc3k, label="celltype", validation_fraction=0)
    with pytest.raises(ValueError, match="too few to annotate.*allow_low_coverage=True"):
        celltyper.annotate(tiny(genes=("CD3E", "MS4A1", "LYZ")), model=model)


def test_ctrl_c_stops_a_long_call_and_raises_keyboard_interrupt(pbmc3k):
    # An MLP of 2,000 epochs without early stopping runs for minutes here; SIGINT after 1 s must
    # stop it at the next epoch (cancel.hpp) and raise KeyboardInterrupt, as Ctrl-C in a notebook.
    import signal
    import threading
    import time
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            celltyper.train(pbmc3k, label="celltype", classifier="mlp", validation_fraction=0, epochs=2000, threads=1)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 15
    # The module still works afterwards.
    model = celltyper.train(pbmc3k, label="celltype", validation_fraction=0)
    assert len(model.classes) >= 2


# ---- a notebook user's expectations -------------------------------------------------------------

@needs_data
def test_labels_hold_no_empty_category_and_a_view_is_copied_once(pbmc3k):
    # scanpy's rank_genes_groups refuses a group without cells, and plot legends list every
    # category: only the labels that occur. A view takes the columns after one copy, one warning.
    import warnings

    model = celltyper.train(pbmc3k[::2].copy(), label="celltype", validation_fraction=0)
    view = pbmc3k[pbmc3k.obs["celltype"].isin(["B", "NK"])]
    assert view.is_view
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = celltyper.annotate(view, model=model)
    said = [str(w.message) for w in caught]
    assert sum("is a view of another AnnData" in m for m in said) == 1, said
    assert not any(w.category.__name__ == "ImplicitModificationWarning" for w in caught), said
    assert not view.is_view and "celltyper_label" in view.obs
    counts = view.obs["celltyper_label"].value_counts()
    assert (counts > 0).all(), counts
    assert set(result.labels.cat.categories) == set(result.labels.astype(str))
    assert result.matrix == "AnnData.X"


@needs_data
def test_an_anndata_of_zero_cells_is_annotated_and_embedded_as_empty_results(pbmc3k):
    # a scattered query's empty shard: the columns of a non-empty one, no rows, one warning
    model = celltyper.train(pbmc3k[::2].copy(), label="celltype", validation_fraction=0)
    empty, five = pbmc3k[:0].copy(), pbmc3k[:5].copy()
    with pytest.warns(UserWarning, match="zero cells: nothing to annotate"):
        result = celltyper.annotate(empty, model=model, top_k=2, over_clustering="seurat_clusters")
    celltyper.annotate(five, model=model, top_k=2, over_clustering="seurat_clusters")
    assert len(result.labels) == 0 and result.probabilities.shape == (0, 9)
    assert list(empty.obs.columns) == list(five.obs.columns)
    assert anndata.concat([empty, five]).obs["celltyper_label"].notna().all()
    if os.path.exists(STORE):
        with pytest.warns(UserWarning, match="zero cells: nothing to embed"):
            assert celltyper.embed(empty).shape[0] == 0


@needs_data
def test_a_celltypist_users_habits(pbmc3k):
    """CellTypist's keyword arguments say what does their work here; over_clustering takes the clusters themselves."""
    model = celltyper.train(pbmc3k[::2].copy(), label="celltype", validation_fraction=0)
    query = pbmc3k[1::2].copy()
    by_name = celltyper.annotate(query, model=model, over_clustering="seurat_clusters", inplace=False)
    for given in (query.obs["seurat_clusters"], list(query.obs["seurat_clusters"].astype(str)), query.obs["seurat_clusters"].iloc[::-1]):
        result = celltyper.annotate(query, model=model, over_clustering=given, inplace=False)
        assert list(result.majority_vote.astype(str)) == list(by_name.majority_vote.astype(str))
    with pytest.raises(ValueError, match="over_clustering: 3 values for 1319 cells"):
        celltyper.annotate(query, model=model, over_clustering=[1, 2, 3])
    for keyword, said in (("p_thres", "here min_score="), ("majority_voting", "here over_clustering='COLUMN'"),
                          ("mode", "here there are no 'prob match' multi-labels: top_k=2")):
        with pytest.raises(TypeError, match=f"CellTypist's {keyword}; " + re.escape(said)):
            celltyper.annotate(query, model=model, **{keyword: 0.5})
    for keyword, said in (("top_genes", "here n_genes="), ("balance_cell_type", "here class_balanced="), ("check_expression", "here nothing")):
        with pytest.raises(TypeError, match=f"CellTypist's {keyword}; " + re.escape(said)):
            celltyper.train(query, label="celltype", **{keyword: True})
    for keyword, said in (("ref", "here reference= (an AnnData"), ("prune", "here unassign_unlike=True"), ("clusters", "here over_clustering=")):
        with pytest.raises(TypeError, match=f"SingleR's {keyword}; " + re.escape(said)):
            celltyper.annotate(query, model=model, **{keyword: 0.5})


def test_reference_mode_warnings_and_references_by_name(pbmc3k):
    """Reference mode's training warnings reach the result (as the command prints them); references
    may be a dict by name, as train's; gene_pooling= as the command's --gene-pooling."""
    savercat_path = os.path.join(DATA, "savercat-pbmc-3tech", "pbmc_prep_3tech.h5ad")
    if not os.path.exists(savercat_path):
        pytest.skip("no savercat data")
    savercat = anndata.read_h5ad(savercat_path)
    query = pbmc3k[1::4].copy()
    with pytest.warns(UserWarning, match="different Cell Ontology depths"):
        result = celltyper.annotate(query, reference={"pbmc3k": pbmc3k[::4].copy(), "savercat": savercat}, label="celltype", inplace=False)
    assert any("different Cell Ontology depths" in w for w in result.warnings), result.warnings
    shared = celltyper.annotate(query, reference=[pbmc3k[::4].copy(), savercat], label="celltype", gene_pooling="shared", inplace=False)
    assert len(shared.labels) == query.n_obs
    with pytest.raises(ValueError, match="gene_pooling=, balance_references= and own_gene_names= apply to reference mode"):
        celltyper.annotate(query, model=shared.model, gene_pooling="shared")


@needs_data
def test_unassign_unlike_equals_cli(tmp_path, pbmc3k):
    """unassign_unlike=True leaves the cells unlike every reference type Unassigned, as the command's --unassign-unlike."""
    lines_path = os.path.join(DATA, "cellbench-mixology", "cellbench_3cl_celseq2_dropseq.h5ad")
    if not os.path.exists(lines_path):
        pytest.skip("no cellbench data")
    model = celltyper.train(pbmc3k, label="celltype")
    model_path = str(tmp_path / "model.h5")
    model.save(model_path)
    out = str(tmp_path / "pruned.h5ad")
    cli("annotate", "--model", model_path, "--input", lines_path, "--unassign-unlike", "--over-clustering", "obs:cell_line", "--out", out)
    expected = anndata.read_h5ad(out)
    query = anndata.read_h5ad(lines_path)
    plain = celltyper.annotate(query, model=model, inplace=False)
    result = celltyper.annotate(query, model=model, unassign_unlike=True, over_clustering=list(query.obs["cell_line"].astype(str)))
    unlike = result.unlike_reference.to_numpy()
    assert unlike.mean() > 0.9  # lung cancer lines under a PBMC model
    assert (result.labels.astype(str).to_numpy()[unlike] == "Unassigned").all()
    assert list(result.labels.astype(str)[~unlike]) == list(plain.labels.astype(str)[~unlike])
    assert list(query.obs["celltyper_label"].astype(str)) == list(expected.obs["celltyper_label"].astype(str))
    assert list(result.majority_vote.astype(str)) == list(expected.obs["celltyper_majority_vote"].astype(str)) == ["Unassigned"] * query.n_obs
    np.testing.assert_allclose(result.scores.to_numpy(), plain.scores.to_numpy(), atol=0, rtol=0)
    assert any("--unassign-unlike left them Unassigned" in w or "unassign_unlike" in w for w in result.warnings), result.warnings
    with pytest.raises(TypeError, match=re.escape("unassign_unlike=True")):
        celltyper.annotate(query, model=model, p_thres=0.5)
    # evaluate: the lines are types the model has no class for, counted as the command counts them
    unseen = celltyper.evaluate(query, truth="cell_line")["unseen_types"]
    expected_json = json.loads(cli("evaluate", "--input", out, "--truth", "obs:cell_line", "--json", "-").stdout)["unseen_types"]
    assert unseen == expected_json
    assert unseen["n_unassigned"] == int(unlike.sum()) and unseen["n_cells"] == query.n_obs, unseen


def test_arguments_of_the_wrong_type_are_type_errors():
    data = tiny()
    with pytest.raises(TypeError, match="an AnnData object is needed, not csr_matrix"):
        celltyper.annotate(data.X, model="/nonexistent/model.h5")
    with pytest.raises(TypeError, match="label is named by a str .* or a list of them, not set"):
        celltyper.train(data, label={"cell_type"})  # (a list: alternatives, one per reference)
    with pytest.raises(TypeError, match="min_score must be a number, not str"):
        celltyper.annotate(data, model="/nonexistent/model.h5", min_score="0.5")
    with pytest.raises(TypeError, match="top_k must be an integer, not float"):
        celltyper.annotate(data, model="/nonexistent/model.h5", top_k=3.5)
    with pytest.raises(ValueError, match="threads=-1 is not in"):
        celltyper.train(data, label="cell_type", threads=-1)
    import pandas as pd

    with pytest.raises(TypeError, match=r"gene_table is the path \(str or os.PathLike\) of a gene table TSV .* not DataFrame"):
        celltyper.train(data, label="cell_type", gene_table=pd.DataFrame({"entrez_id": [1], "symbol": ["A"]}))
    # Flags are True or False: the text 'false' is no False (bool('false') is True).
    with pytest.raises(TypeError, match=r"calibrate must be True or False, not str \('false'\)"):
        celltyper.train(data, label="cell_type", calibrate="false")
    with pytest.raises(TypeError, match="hierarchical must be True or False, not str"):
        celltyper.annotate(data, reference=data, label="cell_type", hierarchical="false")
    with pytest.raises(TypeError, match="refit must be True or False, not int"):
        celltyper.annotate(data, reference=data, label="cell_type", refit=0)
    with pytest.raises(TypeError, match="ensemble must be True or False, not str"):
        celltyper.cv(data, label="cell_type", n_splits=2, ensemble="no")
    with pytest.raises(TypeError, match="verbose must be True or False"):
        celltyper.train(data, label="cell_type", verbose="yes")
    with pytest.raises(TypeError, match="inplace must be True or False, not str"):
        celltyper.annotate(data, reference=data, label="cell_type", inplace="false")
    with pytest.raises(TypeError, match="use_ontology must be True or False, not str"):
        celltyper.evaluate(data, truth="cell_type", pred="cell_type", use_ontology="false")
    assert celltyper._flag(np.True_, "x") is True and celltyper._flag(np.array(False), "x") is False
    with pytest.raises(ValueError, match="exclude each other"):
        celltyper.annotate(data, model="/nonexistent/model.h5", reference=data, label="cell_type")
    # A misspelt keyword with a text value is not a hyperparameter: the likely keyword is named.
    with pytest.raises(TypeError, match="unexpected keyword argument 'classifer'; did you mean 'classifier'"):
        celltyper.train(data, label="cell_type", classifer="mlp")
    with pytest.raises(ValueError, match="no hyperparameter 'n_estimator'; did you mean 'n_estimators'.*its hyperparameters: n_estimators"):
        celltyper.train(data, label="cell_type", classifier="xgboost", n_estimator=5)
    assert celltyper._hyperparameters({"lambda_": 2, "l2": 0.1}) == {"lambda": 2.0, "l2": 0.1}
    with pytest.raises(ValueError, match="has no layer 'raw'.*use_raw=True"):
        celltyper.train(data, label="cell_type", layer="raw")


def test_prose_after_a_flag_is_not_its_value():
    speak = celltyper.train.speak
    assert "features='must'" not in speak("--features must be genept or expression, got 'pca'")
    assert "gene_column='with'" not in celltyper.annotate.speak("pass --gene-column with the var column of gene symbols")
    assert speak("--layer counts reads the counts") == "layer='counts' reads the counts"


def test_warnings_point_at_the_callers_line_and_verbose_writes_to_sys_stderr(capsys):
    import warnings

    data = tiny()
    data.X = data.X.tocsc()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = celltyper.train(data, label="cell_type", validation_fraction=0, verbose=True)
    converted = [w for w in caught if "converted to CSR" in str(w.message)]
    assert converted and all(w.filename == __file__ for w in converted), [(w.filename, str(w.message)) for w in caught]
    assert "celltyper: " in capsys.readouterr().err
    assert model.classes
    metrics = celltyper.evaluate(tiny(), truth="cell_type", pred="cell_type", top_k=3)  # (one k, not a list)
    assert metrics["overall"]["accuracy"] == 1.0


@needs_data
def test_a_model_read_from_its_file_keeps_the_training_summary(tmp_path, pbmc3k):
    reference = pbmc3k[::3].copy()
    # (labels no Cell Ontology name or shorthand reads: a note the file keeps)
    reference.obs["celltype"] = ["cluster " + str(c) if c != "Platelet" else c for c in reference.obs["celltype"]]
    model = celltyper.train(reference, label="celltype")
    assert any("no Cell Ontology id" in w for w in model.summary["warnings"]), model.summary
    model.save(tmp_path / "m.h5")
    again = celltyper.load_model(tmp_path / "m.h5")
    for key in ("n_cells", "n_dropped_unlabelled", "n_dropped_empty", "n_validation", "n_thinned_copies", "warnings", "calibration"):
        assert again.summary[key] == model.summary[key], key
    assert again.summary["validation"]["accuracy"] == model.summary["validation"]["accuracy"]
    described = subprocess.run([CLI, "inspect", str(tmp_path / "m.h5")], capture_output=True, text=True)
    assert "  note: 8 of 9 labels have no Cell Ontology id" in described.stdout, described.stdout
    assert "classes 'Platelet' (5 cells), 'cluster DC' (8 cells) have fewer than 10 labelled cells" in described.stdout, described.stdout


def test_scores_are_calibrated_on_the_validation_cells_and_labels_stay(tmp_path, pbmc3k):
    even, odd = pbmc3k[::2].copy(), pbmc3k[1::2].copy()
    model = celltyper.train(even, label="celltype")
    raw = celltyper.train(even, label="celltype", calibrate=False)
    fitted = model.summary["calibration"]
    assert 0.1 < fitted["temperature"] < 0.5 and fitted["n_cells"] > 200, fitted
    assert fitted["expected_calibration_error"]["after"] < fitted["expected_calibration_error"]["before"] / 3, fitted
    assert raw.summary["calibration"]["temperature"] == 1.0 and "--no-calibrate" in raw.summary["calibration"]["reason"]
    calibrated = celltyper.annotate(odd, model, inplace=False)
    plain = celltyper.annotate(odd, raw, inplace=False)
    assert list(calibrated.labels) == list(plain.labels)
    right = np.asarray(calibrated.labels) == odd.obs["celltype"].astype(str).to_numpy()
    # the mean score is near the share of right calls once calibrated, far below it before
    assert abs(float(np.mean(calibrated.scores)) - right.mean()) < 0.05, (np.mean(calibrated.scores), right.mean())
    assert right.mean() - float(np.mean(plain.scores)) > 0.2
    # the tempered probabilities are the raw ones raised to 1/T and renormalised
    p = np.asarray(plain.probabilities, dtype=np.float64) ** (1 / fitted["temperature"])
    np.testing.assert_allclose(np.asarray(calibrated.probabilities), p / p.sum(axis=1, keepdims=True), atol=2e-5)
    # the file keeps the temperature: the command line gives the same scores
    model.save(tmp_path / "m.h5")
    odd.write_h5ad(tmp_path / "odd.h5ad")
    run = subprocess.run([CLI, "-q", "annotate", "-m", str(tmp_path / "m.h5"), "-i", str(tmp_path / "odd.h5ad"), "--csv",
                          str(tmp_path / "odd.csv")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import pandas as pd

    cli = pd.read_csv(tmp_path / "odd.csv", index_col=0, keep_default_na=False)
    np.testing.assert_allclose(cli["celltyper_score"].to_numpy(), np.asarray(calibrated.scores), atol=1e-5)
    described = subprocess.run([CLI, "inspect", str(tmp_path / "m.h5")], capture_output=True, text=True)
    assert "Scores      calibrated (temperature" in described.stdout, described.stdout
    # cv calibrates each fold's model as train does: the same out-of-fold labels, sharper scores
    folds = dict(label="celltype", n_splits=3, use_ontology=False, ensemble=False, threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (small classes in folds)
        on = celltyper.cv(even, **folds)
        off = celltyper.cv(even, calibrate=False, **folds)
    method = [c for c in on.predictions.columns if c not in ("reference", "fold", "truth")][0]
    assert (on.predictions[method] == off.predictions[method]).all()
    calibration = lambda result: result.pooled.iloc[0]["expected_calibration_error"]  # noqa: E731
    assert calibration(on) < 0.05 < 0.2 < calibration(off), (calibration(on), calibration(off))
    # reference mode: calibrated on its held-out cells; the query's `group` is no validation group of the reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_the_fly = celltyper.annotate(odd, reference=even, label="celltype", group="none", inplace=False)
    assert list(on_the_fly.labels) == list(celltyper.annotate(odd, reference=even, label="celltype", calibrate=False, inplace=False).labels)
    assert on_the_fly.model.summary["calibration"]["n_cells"] > 200
    assert on_the_fly.models[0]["calibrated"] and on_the_fly.models[0]["temperature"] < 0.5


def test_every_argument_is_described_in_its_docstring():
    import inspect

    for function in (celltyper.annotate, celltyper.train, celltyper.embed, celltyper.evaluate, celltyper.load_model):
        doc = function.__doc__ or ""
        undescribed = [name for name in inspect.signature(function).parameters
                       if name != "hyperparameters" and not re.search(rf"^\s+(\w+, )*{name}(, \w+)* :", doc, re.M)]
        assert not undescribed, (function.__name__, undescribed)


def test_hyperparameters_written_as_text_are_numbers():
    # (a config file's "0.1"); text that is no number is not a hyperparameter
    assert celltyper._hyperparameters({"l2": "0.1"}) == {"l2": 0.1}
    with pytest.raises(TypeError, match=r"max_depth='six': a classifier's hyperparameters are numbers"):
        celltyper._hyperparameters({"max_depth": "six"})


# ---- cross-validation ----------------------------------------------------------------------------

def _cli_cv(*args):
    document = json.loads(cli("cv", *args, "--threads", "2", "--json", "-").stdout)
    return {(fold["group"], method): metrics for fold in document["folds"] for method, metrics in fold["methods"].items()}, document


@needs_data
def test_cv_of_an_anndata_equals_the_cli_and_gives_each_cells_out_of_fold_label():
    """cv(adata, group=COLUMN): the folds, metrics and pooled scores of `celltyper cv --json` on the same file;
    .predictions holds each held-out cell's label under its obs name."""
    if not os.path.exists(SAVERCAT):
        pytest.skip("savercat is absent")
    savercat = anndata.read_h5ad(SAVERCAT)
    expected, document = _cli_cv("--reference", SAVERCAT, "--label", "obs:celltype", "--group", "obs:tech", "--classifier", "logreg,knn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = celltyper.cv(savercat, label="celltype", group="obs:tech", classifier=["logreg", "knn"], threads=2)
    assert list(result.mean.index) == ["logreg:expression", "knn:expression", "ensemble"] == document["methods"]
    assert sorted(set(result.folds["fold"])) == sorted(set(savercat.obs["tech"].astype(str)))
    assert len(result.folds) == len(expected) == 9
    for _, row in result.folds.iterrows():
        metrics = expected[(row["fold"], row["method"])]
        assert row["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
        assert row["macro_f1"] == pytest.approx(metrics["macro"]["f1"], abs=1e-9)
        assert row["n_test"] == (savercat.obs["tech"].astype(str) == row["fold"]).sum()
    for method in document["methods"]:
        assert result.mean.loc[method, "accuracy"] == pytest.approx(document["mean"][method]["accuracy"], abs=1e-9)
        assert result.pooled.loc[method, "macro_f1"] == pytest.approx(document["pooled"][method]["macro"]["f1"], abs=1e-9)
    # every labelled cell once, under its own name, with its own label as truth
    predictions = result.predictions
    assert len(predictions) == savercat.n_obs and predictions.index.is_unique
    assert list(predictions["truth"]) == list(savercat.obs.loc[predictions.index, "celltype"].astype(str))
    assert list(predictions["fold"]) == list(savercat.obs.loc[predictions.index, "tech"].astype(str))
    for (fold, method), metrics in expected.items():
        cells = predictions[predictions["fold"] == fold]
        assert (cells[method] == cells["truth"]).mean() == pytest.approx(metrics["accuracy"], abs=1e-12)
    assert "fold mean" in result.table and "fold mean" in repr(result)
    # each prediction's probability: its class's, the highest of the cell's (so at least 1 / classes)
    assert list(result.scores.columns) == document["methods"] and list(result.scores.index) == list(predictions.index)
    assert ((result.scores > 1 / 3 - 1e-6) & (result.scores <= 1 + 1e-6)).all().all()
    # per-class figures of each fold and pooled, as the JSON's per_class
    per_class = result.per_class.set_index(["fold", "method", "label"])
    for (fold, method), metrics in expected.items():
        for row in metrics["per_class"]:
            assert per_class.loc[(fold, method, row["label"]), "f1"] == pytest.approx(row["f1"], abs=1e-12)
            assert per_class.loc[(fold, method, row["label"]), "support"] == row["support"]
    pooled_support = per_class.xs(("pooled", "logreg:expression"), level=["fold", "method"])["support"]
    assert pooled_support.to_dict() == savercat.obs["celltype"].astype(str).value_counts().to_dict()
    # out-of-fold class probabilities of each flat method: the prediction is the best class, the score its probability
    assert list(result.probabilities) == document["methods"]
    for method, probabilities in result.probabilities.items():
        assert list(probabilities.index) == list(predictions.index)
        assert sorted(probabilities.columns) == ["B cells", "Monocytes", "T/NK cells"]
        assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
        assert (probabilities.idxmax(axis=1) == predictions[method].astype(str)).all()
        assert np.allclose(probabilities.max(axis=1), result.scores[method], atol=1e-6)
        # pooled calibration: scikit-learn's log loss and a 15-bin ECE of the same probabilities
        from sklearn.metrics import log_loss
        truth = predictions["truth"].astype(str).to_numpy()
        classes = list(probabilities.columns)
        values = probabilities.to_numpy(dtype=np.float64)
        right = probabilities.idxmax(axis=1).to_numpy() == truth
        confidence = values.max(axis=1)
        bins = np.clip(np.ceil(confidence * 15 - 1e-6) - 1, 0, 14).astype(int)
        ece = sum((bins == b).mean() * abs(confidence[bins == b].mean() - right[bins == b].mean()) for b in range(15) if (bins == b).any())
        calibration = result.details["pooled"][method]["ranking"]["calibration"]
        assert calibration["n_cells"] == len(truth)
        of_truth = values[np.arange(len(truth)), [classes.index(label) for label in truth]]
        assert calibration["log_loss"] == pytest.approx(-np.log(np.clip(of_truth, 1e-15, 1)).mean(), abs=1e-9)
        if of_truth.min() > 1e-6:  # (scikit-learn clips a 0 at its dtype's epsilon, not at 1e-15)
            assert calibration["log_loss"] == pytest.approx(log_loss(truth, values, labels=classes), abs=1e-6)
        assert calibration["expected_calibration_error"] == pytest.approx(ece, abs=1e-5)
        assert calibration["accuracy"] == pytest.approx(right.mean(), abs=1e-12)
        assert result.pooled.loc[method, "expected_calibration_error"] == pytest.approx(calibration["expected_calibration_error"], abs=1e-12)


@needs_data
def test_cv_of_named_references_held_out_whole_equals_the_cli(tmp_path, pbmc3k):
    """cv({name: adata}, group="file", harmonize_labels=True): leave-one-reference-out as `cv --group file`,
    the folds named by the dict's keys; train(..., group="file") validates on a whole reference the same way."""
    if not os.path.exists(SAVERCAT):
        pytest.skip("savercat is absent")
    savercat = anndata.read_h5ad(SAVERCAT)
    expected, _ = _cli_cv("--reference", f"{PBMC3K},{SAVERCAT}", "--label", "obs:celltype", "--group", "file", "--harmonize-labels",
                          "--label-map", LABEL_MAP)
    report = tmp_path / "cv.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = celltyper.cv({"pbmc3k": pbmc3k, "savercat": savercat}, label="celltype", group="file", harmonize_labels=True,
                              label_map=LABEL_MAP, threads=2, report=report)
    paths = {"pbmc3k": PBMC3K, "savercat": SAVERCAT}
    assert sorted(result.folds["fold"]) == ["pbmc3k", "savercat"]
    for _, row in result.folds.iterrows():
        metrics = expected[(paths[row["fold"]], row["method"])]
        assert row["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
        assert row["hierarchical_f"] == pytest.approx(metrics["ontology"]["hierarchical_f1"], abs=1e-9)
        assert row["corrected_macro_f1"] == pytest.approx(metrics["ontology"]["corrected_macro_f1"], abs=1e-9)
    assert list(result.predictions["reference"].cat.categories) == ["pbmc3k", "savercat"]
    assert (result.predictions["reference"] == result.predictions["fold"]).all()
    assert "savercat" in set(result.predictions["fold"]) and "lymphocyte" in set(result.predictions["truth"])
    assert report.exists() and "celltyper cross-validation" in report.read_text()
    # train(group="file"): the validation holds out a whole reference, as `train --group file`
    model_path = str(tmp_path / "by_file.h5")
    cli("train", "--reference", f"{PBMC3K},{SAVERCAT}", "--label", "obs:celltype", "--group", "file", "--label-map", LABEL_MAP,
        "--harmonize-labels", "--out", model_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = celltyper.train({"pbmc3k": pbmc3k, "savercat": savercat}, label="celltype", group="file", label_map=LABEL_MAP,
                                harmonize_labels=True)
    written = celltyper.load_model(model_path)
    assert model.validation["accuracy"] == pytest.approx(written.validation["accuracy"], abs=1e-9)
    assert model.validation["n_cells"] == written.validation["n_cells"]
    assert model.provenance["group_column"] == written.provenance["group_column"] == "file"  # (no obs column 'file')


@needs_data
def test_cv_in_k_stratified_folds_equals_the_cli(pbmc3k):
    """cv(adata, n_splits=3) without a group: the folds of `celltyper cv --n-splits 3` (StratifiedKFold, the same seed)."""
    expected, _ = _cli_cv("--reference", PBMC3K, "--label", "obs:celltype", "--n-splits", "3", "--no-ontology")
    result = celltyper.cv(pbmc3k, label="celltype", n_splits=3, use_ontology=False, threads=2)
    assert sorted(set(result.folds["fold"])) == ["fold 1", "fold 2", "fold 3"] and len(result.predictions) == pbmc3k.n_obs
    for _, row in result.folds.iterrows():
        assert row["accuracy"] == pytest.approx(expected[(row["fold"], row["method"])]["accuracy"], abs=1e-9)
    assert any("stratified by label" in note for note in result.notes)
    with pytest.raises(ValueError, match="cv needs group="):
        celltyper.cv(pbmc3k, label="celltype")


@needs_data
def test_cv_returns_each_folds_model_which_labels_its_held_out_cells_as_cv_did(tmp_path, pbmc3k):
    """return_models=True: scikit-learn's return_estimator; each fold's Model annotates its held-out cells with the
    out-of-fold labels and scores of .predictions / .scores, and saves and reads back as a trained model."""
    result = celltyper.cv(pbmc3k, label="celltype", n_splits=2, classifier=["logreg", "knn"], use_ontology=False, threads=2,
                          return_models=True)
    assert sorted(result.models) == [(f, m) for f in ("fold 1", "fold 2") for m in ("knn:expression", "logreg:expression")]
    model = result.models[("fold 2", "logreg:expression")]
    assert isinstance(model, celltyper.Model) and model.provenance["cv_fold"] == "fold 2"
    assert model.provenance["cv_held_out"] == "fold 'fold 2' of 2 folds of cells stratified by label"
    held = result.predictions["fold"] == "fold 2"
    cells = pbmc3k[result.predictions.index[held.to_numpy()]].copy()  # (.predictions lists the cells fold by fold)
    labels = celltyper.annotate(cells, model, inplace=False)
    assert (labels.labels.astype(str).to_numpy() == result.predictions.loc[held, "logreg:expression"].astype(str).to_numpy()).all()
    np.testing.assert_allclose(labels.scores.to_numpy(), result.scores.loc[held, "logreg:expression"].to_numpy(), atol=1e-5)
    model.save(str(tmp_path / "fold2.h5"))
    assert celltyper.load_model(str(tmp_path / "fold2.h5")).classes == model.classes
    assert celltyper.cv(pbmc3k, label="celltype", n_splits=2, use_ontology=False, threads=2).models == {}
    with pytest.raises(TypeError, match="return_models must be True or False"):
        celltyper.cv(pbmc3k, label="celltype", n_splits=2, return_models="yes")


@needs_data
def test_cv_probabilities_are_zero_for_a_class_a_folds_model_never_saw(pbmc3k):
    """A class only one group holds: the model of the fold holding it out lacks it, so its cells' probability of it is 0
    there (the union of the folds' classes are the columns), and `+hierarchical` rows have no probabilities."""
    adata = pbmc3k[::3].copy()
    platelet = (adata.obs["celltype"] == "Platelet").to_numpy()
    adata.obs["batch"] = np.where(platelet, "b1", np.array(["b1", "b2"])[np.arange(adata.n_obs) % 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = celltyper.cv(adata, label="celltype", group="batch", hierarchical=True,
                              label_map=os.path.join(DATA, "label_map_to_cell_ontology.tsv"), label_dataset="pbmc3k-seurat-labels", threads=2)
    assert list(result.probabilities) == ["logreg:expression"]  # (one configuration: no ensemble; no +hierarchical)
    probabilities = result.probabilities["logreg:expression"]
    assert "Platelet" in probabilities.columns and len(probabilities) == adata.n_obs
    fold = result.predictions["fold"].astype(str)
    assert (probabilities.loc[(fold == "b1").to_numpy(), "Platelet"] == 0).all()  # (b2's cells taught b1's model: no platelet)
    assert (probabilities.loc[(fold == "b2").to_numpy(), "Platelet"] > 0).all()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    # pooled ranking: b1's platelets are misses at every k (no such class in their fold's model), and
    # outside the calibration, which covers every other cell
    ranking = result.details["pooled"]["logreg:expression"]["ranking"]
    truth = result.predictions["truth"].astype(str).to_numpy()
    unknown = (fold == "b1").to_numpy() & (truth == "Platelet")
    assert unknown.sum() > 0 and ranking["n_truth_not_in_classes"] == unknown.sum()
    assert ranking["calibration"]["n_cells"] == adata.n_obs - unknown.sum()
    top1 = (probabilities.idxmax(axis=1).to_numpy() == truth) & ~unknown
    assert ranking["top_k_accuracy"]["1"] == pytest.approx(top1.mean(), abs=1e-12)


@needs_data
def test_cv_and_train_refuse_what_cannot_run(pbmc3k):
    with pytest.raises(ValueError, match="group='file' holds out each AnnData"):
        celltyper.cv(pbmc3k, label="celltype", group="file")
    with pytest.raises(ValueError, match="group='file' validates on whole references"):
        celltyper.train(pbmc3k, label="celltype", group="file")
    with pytest.raises(ValueError, match="need a single classifier"):
        celltyper.cv(pbmc3k, label="celltype", group="batch", classifier=["logreg", "knn"], l2=0.1)
    with pytest.raises(ValueError, match="no obs column 'donor'"):
        celltyper.cv(pbmc3k, label="celltype", group="donor")
    with pytest.raises(TypeError, match="did you mean 'harmonize_labels'"):
        celltyper.cv(pbmc3k, label="celltype", group="seurat_clusters", harmonise_labels=True)
    with pytest.raises(ValueError, match="the group column 'celltype' is the label column"):
        celltyper.cv(pbmc3k, label="celltype", group="celltype")
    with pytest.raises(ValueError, match="has no hyperparameter 'C'"):  # (said once, before any fold trains)
        celltyper.cv(pbmc3k, label="celltype", group="seurat_clusters", C=1.0)
    with pytest.raises(ValueError, match="'held-out' trains each fold"):
        celltyper.cv(pbmc3k, label="celltype", group="seurat_clusters", restrict_genes="heldout")


@needs_data
def test_cv_says_what_its_figures_cover(pbmc3k):
    """Cells without a label are named (in no fold); ontology metrics over a few mapped cells say so (n_mapped)."""
    adata = pbmc3k[::4].copy()
    adata.obs["donor"] = np.array(["d1", "d2"])[np.arange(adata.n_obs) % 2]
    # (labels no Cell Ontology name or shorthand reads, but 'Platelet')
    adata.obs["celltype"] = ["cluster " + str(c) if c != "Platelet" else c for c in adata.obs["celltype"]]
    adata.obs["celltype"] = adata.obs["celltype"].astype(object)
    adata.obs.iloc[:3, adata.obs.columns.get_loc("celltype")] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = celltyper.cv(adata, label="celltype", group="donor", folds="d1", threads=2)
    said = [str(w.message) for w in caught]
    assert any("3 cells without a label in obs:celltype left out (in no fold)" in m for m in said), said
    assert list(result.folds["fold"]) == ["d1"] and len(result.predictions) == ((adata.obs["donor"] == "d1") & adata.obs["celltype"].notna()).sum()
    # only 'Platelet' maps to a CL term without a label map: the ontology columns describe those cells
    coverage = [m for m in said if "describe" in m]
    assert len(coverage) == 1 and "label_map=<TSV>" in coverage[0] and "cluster Naive CD4 T" in coverage[0], said
    n_platelet = int(((result.predictions["truth"] == "Platelet") & (result.predictions["logreg:expression"] == "Platelet")).sum())
    assert result.pooled.loc["logreg:expression", "n_mapped"] == n_platelet
    assert all(m in result.warnings for m in coverage)


def test_a_gene_store_named_by_the_environment_is_named_when_missing(tmp_path, monkeypatch):
    """CELLTYPER_GENE_STORE naming a missing file: the message names the variable (as the command line's), not setup.sh;
    naming a store: it is used."""
    monkeypatch.setenv("CELLTYPER_GENE_STORE", str(tmp_path / "absent.h5"))
    with pytest.raises(ValueError, match=r"no gene store at .*absent\.h5 \(named by CELLTYPER_GENE_STORE\): correct or unset the variable, "
                                         r"or pass genes="):
        celltyper.embed(tiny())
    with pytest.raises(ValueError, match="named by CELLTYPER_GENE_STORE"):
        celltyper.genes.neighbors("CD3E", k=3)


@needs_data
def test_cv_probabilities_csv_heads_a_class_named_like_a_column_apart(tmp_path, pbmc3k):
    """`cv --probabilities`: a class named 'fold' (or obs_name, reference, method) is headed 'class:fold', so that the
    header names each column once (pandas would rename a repeat 'fold.1' silently)."""
    adata = pbmc3k[::4].copy()
    adata.obs["celltype"] = adata.obs["celltype"].astype(str).replace({"B": "fold", "NK": "method"})
    adata.obs["batch"] = np.array(["b1", "b2"])[np.arange(adata.n_obs) % 2]
    path = tmp_path / "named.h5ad"
    adata.write_h5ad(path)
    cli("cv", "--reference", str(path), "--label", "obs:celltype", "--group", "obs:batch", "--no-ontology", "--threads", "2",
        "--probabilities", str(tmp_path / "q.csv"), "-q")
    header = open(tmp_path / "q.csv").readline().rstrip("\n").split(",")
    assert header[:4] == ["obs_name", "reference", "fold", "method"] and len(set(header)) == len(header)
    assert "class:fold" in header and "class:method" in header and "Naive CD4 T" in header


def test_another_species_trains_on_its_own_names(tmp_path, pbmc3k):
    """Genes named as no gene table here knows (fly-like ids): train on the reference's own names,
    annotate reads the query's names so, with the command's labels."""
    rank = np.argsort(np.argsort(np.asarray(pbmc3k.var_names)))
    fly = anndata.AnnData(pbmc3k.X.copy(), obs=pbmc3k.obs[["celltype"]].copy())
    fly.var_names = [f"FBgn{r:07d}" for r in rank]
    reference, query = fly[::2].copy(), fly[1::2].copy()
    with pytest.warns(UserWarning, match="Training on the references' own var names as written"):
        model = celltyper.train(reference, label="celltype")
    assert model.provenance["gene_table"] == "the references' own var names"
    result = celltyper.annotate(query, model=model, inplace=False)
    assert (result.labels.astype(str).to_numpy() == query.obs["celltype"].astype(str).to_numpy()).mean() > 0.85
    model.save(str(tmp_path / "fly.h5"))
    query.write_h5ad(tmp_path / "query.h5ad")
    cli("annotate", "--model", str(tmp_path / "fly.h5"), "--input", str(tmp_path / "query.h5ad"), "--csv", str(tmp_path / "query.csv"))
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "query.csv", index_col=0).iloc[:, 0].astype(str)) == list(result.labels.astype(str))
    # (what annotate chose as you would have: in .notes, not .warnings)
    assert any(note.startswith("the model's genes are its references' var names as written") for note in result.notes), result.notes
    assert not any("var names as written" in warning for warning in result.warnings)


def test_own_gene_names_when_asked(pbmc3k):
    """Names the human table half-knows (zebrafish-like: human symbols lower-cased, with an 'a'
    suffix, clone names): by default the table serves and the warning names own_gene_names=True,
    which trains on every var; a gene table given to annotate does not serve that model."""
    rank = np.argsort(np.argsort(np.asarray(pbmc3k.var_names)))
    names, seen = [], set()
    for symbol, r in zip(pbmc3k.var_names, rank):
        name = symbol.lower() if r % 20 < 9 else symbol.lower() + "a" if r % 20 < 14 else f"zgc:{r:06d}"
        name = name if name not in seen else f"zgc:{r:06d}"
        seen.add(name)
        names.append(name)
    zebrafish = anndata.AnnData(pbmc3k.X.copy(), obs=pbmc3k.obs[["celltype"]].copy())
    zebrafish.var_names = names
    reference, query = zebrafish[::2].copy(), zebrafish[1::2].copy()
    with pytest.warns(UserWarning, match=r"the data's own var names as the genes \(own_gene_names=True\)"):
        celltyper.train(reference, label="celltype", validation_fraction=0)
    model = celltyper.train(reference, label="celltype", own_gene_names=True)
    assert model.provenance["gene_table"] == "the references' own var names"
    assert any("own var names as written (13714 genes;" in note for note in model.summary["warnings"])
    result = celltyper.annotate(query, model=model, inplace=False, gene_table=os.path.join(DATA, "gene-annotations", "human_genes.tsv"))
    assert (result.labels.astype(str).to_numpy() == query.obs["celltype"].astype(str).to_numpy()).mean() > 0.85
    assert any("is not used: the model reads the query in its own genes' names" in note for note in result.notes), result.notes
    with pytest.raises(ValueError, match="apply to reference mode"):
        celltyper.annotate(query, model=model, own_gene_names=True)
    with pytest.raises(ValueError, match="own_gene_names=True trains on the expression route"):
        celltyper.train(reference, label="celltype", features="genept", own_gene_names=True)
    on_the_fly = celltyper.annotate(query, reference=reference, label="celltype", own_gene_names=True, inplace=False)
    assert on_the_fly.model.provenance["gene_table"] == "the references' own var names"


def test_a_mudata_object_names_its_modality(pbmc3k):
    """muon's MuData (modalities under .mod, no .X of its own): a TypeError naming the one to pass."""
    class FakeMuData:  # (python3-mudata is not packaged: its shape, as muon users hold it)
        def __init__(self, modalities):
            self.mod = modalities
            self.obs = modalities["rna"].obs
            self.var = modalities["rna"].var

    mdata = FakeMuData({"rna": pbmc3k, "prot": pbmc3k[:, :5].copy()})
    with pytest.raises(TypeError, match=r"adata: a MuData object \(modalities rna, prot\): pass the gene-expression modality, adata\['rna'\]"):
        celltyper.annotate(mdata, reference=pbmc3k, label="celltype")
    with pytest.raises(TypeError, match="a MuData object"):
        celltyper.train(mdata, label="celltype")


def test_the_matrix_chosen_is_a_note_of_the_result(pbmc3k):
    """X log-normalised beside layers['counts'] (scanpy's habit): the counts are read, and the
    result's .notes says so (as the command line's "note:" line does), not .warnings."""
    import scipy.sparse as sp

    reference, query = pbmc3k[::2].copy(), pbmc3k[1::2].copy()
    counts = sp.csr_matrix(query.X)
    query.layers["counts"] = counts.copy()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    query.X = sp.csr_matrix(sp.diags(1e4 / np.maximum(totals, 1)) @ counts).log1p()
    model = celltyper.train(reference, label="celltype", validation_fraction=0)
    result = celltyper.annotate(query, model=model, inplace=False)
    assert result.matrix == "AnnData.layers['counts']"
    assert any("layers['counts'] read" in note for note in result.notes), result.notes
    assert not any("layers['counts'] read" in warning for warning in result.warnings)
