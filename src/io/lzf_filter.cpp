#include "io/lzf_filter.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace celltyper::detail {

std::int64_t lzf_decompress(const std::uint8_t* in, std::size_t in_bytes, std::uint8_t* out, std::size_t out_bytes) {
  std::size_t ip = 0;
  std::size_t op = 0;
  while (ip < in_bytes) {
    const unsigned control = in[ip++];
    if (control < 32) {  // a literal run of control + 1 bytes
      const std::size_t run = control + 1;
      if (run > in_bytes - ip) return -2;
      if (run > out_bytes - op) return -1;
      std::memcpy(out + op, in + ip, run);
      ip += run;
      op += run;
      continue;
    }
    // A back reference: length (control >> 5) + 2, extended by a byte when the 3 bits are all set;
    // distance ((control & 31) << 8) + next byte + 1.
    std::size_t length = control >> 5;
    if (length == 7) {
      if (ip >= in_bytes) return -2;
      length += in[ip++];
    }
    if (ip >= in_bytes) return -2;
    const std::size_t distance = ((static_cast<std::size_t>(control & 31U) << 8) | in[ip++]) + 1;
    length += 2;
    if (distance > op) return -2;
    if (length > out_bytes - op) return -1;
    // Byte by byte: the source may overlap what this copy writes (a repeated pattern).
    for (std::size_t k = 0; k < length; ++k, ++op) out[op] = out[op - distance];
  }
  return static_cast<std::int64_t>(op);
}

namespace {

/// HDF5 filter callback: decodes a chunk (the write direction fails, so HDF5 never writes LZF here).
std::size_t lzf_filter(unsigned flags, std::size_t n_values, const unsigned values[], std::size_t n_bytes, std::size_t* buffer_size,
                       void** buffer) {
  if ((flags & H5Z_FLAG_REVERSE) == 0) return 0;
  // h5py records the chunk's bytes as the third value; otherwise grow from the stored size.
  const std::size_t chunk_bytes = n_values >= 3 ? values[2] : 0;
  std::size_t capacity = chunk_bytes != 0 ? chunk_bytes : std::max<std::size_t>(*buffer_size, n_bytes) * 4;
  constexpr std::size_t kMaxChunk = std::size_t{1} << 32;  // HDF5 chunks are below 4 GiB
  while (capacity <= kMaxChunk) {
    auto* decoded = static_cast<std::uint8_t*>(std::malloc(capacity));
    if (decoded == nullptr) return 0;
    const std::int64_t written = lzf_decompress(static_cast<const std::uint8_t*>(*buffer), n_bytes, decoded, capacity);
    // A chunk of known size decodes to exactly that size (shorter: truncated or corrupt).
    if (written > 0 && (chunk_bytes == 0 || static_cast<std::size_t>(written) == chunk_bytes)) {
      std::free(*buffer);
      *buffer = decoded;
      *buffer_size = capacity;
      return static_cast<std::size_t>(written);
    }
    std::free(decoded);
    if (written != -1) return 0;  // malformed (or an empty chunk, which LZF never writes)
    capacity *= 2;
  }
  return 0;
}

}  // namespace

void register_lzf_filter() {
  static bool registered = false;
  if (registered) return;
  registered = true;
  if (H5Zfilter_avail(kLzfFilterId) > 0) return;  // an application (h5py in the same process) did
  static const H5Z_class2_t filter_class = {H5Z_CLASS_T_VERS,
                                            static_cast<H5Z_filter_t>(kLzfFilterId),
                                            0,  // cannot encode
                                            1,  // can decode
                                            "lzf (celltyper, decoding only)",
                                            nullptr,
                                            nullptr,
                                            lzf_filter};
  H5Zregister(&filter_class);
}

}  // namespace celltyper::detail
