/// @file zarr.hpp
/// AnnData stored as Zarr (v2) directories, as `adata.write_zarr` (anndata >= 0.8) writes them:
/// the same groups and encodings as an .h5ad (obs / var data frames with categorical, nullable and
/// string-array columns; X, raw/X and layers as csr_matrix / csc_matrix groups or dense arrays),
/// each array a directory of `.zarray` metadata and chunk files.
///  - Compressors: Blosc (zarr's default: lz4, zstd, zlib or blosclz inside), zlib, gzip, or none;
///    others (a standalone Zstd / LZ4 codec) are refused naming the codec.
///  - Element types: little-endian numbers and booleans; strings as vlen-utf8 objects (anndata),
///    fixed-length `<U` / `|S`.
///  - CSR matrices stream by rows (a row block reads only the chunks holding it, decoded on every
///    core); CSC matrices are read whole into memory, dense ones by rows.
/// Local directories only.
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// Whether `path` is a local directory holding a Zarr group (`.zgroup`) with an AnnData layout (an
/// `X`, `obs` or `var` member).
bool is_zarr_anndata(const std::string& path);

/// Open a Zarr AnnData directory. Throws InputError naming the file of anything malformed (JSON,
/// shapes, chunks that do not decode) and UnsupportedError for codecs or types it cannot read.
std::unique_ptr<Dataset> open_zarr(const std::string& path);

}  // namespace celltyper
