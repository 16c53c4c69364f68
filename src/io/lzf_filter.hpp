#pragma once
/// @file lzf_filter.hpp
/// The LZF compression filter (HDF5 filter id 32000) that h5py and anndata write with
/// `compression="lzf"`: libhdf5 does not ship it, so celltyper decodes it itself.

#include <cstddef>
#include <cstdint>

namespace celltyper::detail {

/// HDF5's id of the LZF filter (registered by h5py).
inline constexpr int kLzfFilterId = 32000;

/// Decode one LZF stream (liblzf's format: literal runs of 1-32 bytes and back references of
/// 3-264 bytes reaching at most 8 KiB back) from `in` into `out`. Returns the bytes written;
/// -1 when `out` is too small, -2 when the stream is malformed (a reference before the start,
/// a run past the end of the input). Never reads or writes outside the two buffers.
std::int64_t lzf_decompress(const std::uint8_t* in, std::size_t in_bytes, std::uint8_t* out, std::size_t out_bytes);

/// Register the LZF filter (decoding only) with HDF5, once per process; call with the HDF5 lock held.
void register_lzf_filter();

}  // namespace celltyper::detail
