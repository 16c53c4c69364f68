#include "io/direct_read.hpp"

#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include "io/hdf5_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#ifdef CELLTYPER_HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

namespace celltyper::detail {

using h5::Handle;

bool inflate_exact(const unsigned char* in, std::size_t in_bytes, unsigned char* out, std::size_t out_bytes) {
#ifdef CELLTYPER_HAVE_LIBDEFLATE
  thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> decompressor(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  std::size_t produced = 0;
  const auto status = libdeflate_zlib_decompress(decompressor.get(), in, in_bytes, out, out_bytes, &produced);
  return status == LIBDEFLATE_SUCCESS && produced == out_bytes;
#else
  uLongf produced = out_bytes;
  return uncompress(out, &produced, in, in_bytes) == Z_OK && produced == out_bytes;
#endif
}

std::unique_ptr<DirectDataset> DirectDataset::try_open(hid_t dataset, const std::string& file_path, int num_threads,
                                                       std::shared_ptr<RemoteFile> remote) {
  auto lock = h5::hdf5_lock();
  const auto shape = h5::dataset_shape(dataset);
  if (shape.size() != 1) return nullptr;
  Handle type(H5Dget_type(dataset));
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) return nullptr;
  if (H5Tget_order(type.get()) != H5T_ORDER_LE) return nullptr;
  std::unique_ptr<DirectDataset> direct(new DirectDataset());
  direct->element_bytes_ = H5Tget_size(type.get());
  if (type_class == H5T_FLOAT) {
    if (H5Tequal(type.get(), H5T_IEEE_F32LE) > 0) {
      direct->element_ = Element::kF32;
    } else if (H5Tequal(type.get(), H5T_IEEE_F64LE) > 0) {
      direct->element_ = Element::kF64;
    } else {
      return nullptr;
    }
  } else {
    const bool is_signed = H5Tget_sign(type.get()) != H5T_SGN_NONE;
    switch (direct->element_bytes_) {
      case 1: direct->element_ = is_signed ? Element::kI8 : Element::kU8; break;
      case 2: direct->element_ = is_signed ? Element::kI16 : Element::kU16; break;
      case 4: direct->element_ = is_signed ? Element::kI32 : Element::kU32; break;
      case 8: direct->element_ = is_signed ? Element::kI64 : Element::kU64; break;
      default: return nullptr;
    }
  }
  direct->length_ = shape[0];
  Handle plist(H5Dget_create_plist(dataset));
  const H5D_layout_t layout = H5Pget_layout(plist.get());
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t address = H5Dget_offset(dataset);
    if (address == HADDR_UNDEF) {
      if (direct->length_ != 0) return nullptr;  // never written: fill values
    }
    direct->contiguous_ = true;
    direct->base_address_ = address;
  } else if (layout == H5D_CHUNKED) {
    const int n_filters = H5Pget_nfilters(plist.get());
    if (n_filters > 1) return nullptr;
    if (n_filters == 1) {
      unsigned flags = 0;
      std::size_t n_values = 0;
      if (H5Pget_filter2(plist.get(), 0, &flags, &n_values, nullptr, 0, nullptr, nullptr) != H5Z_FILTER_DEFLATE) return nullptr;
      direct->deflate_ = true;
    }
    hsize_t chunk_dim = 0;
    if (H5Pget_chunk(plist.get(), 1, &chunk_dim) != 1 || chunk_dim == 0) return nullptr;
    direct->chunk_elements_ = static_cast<std::int64_t>(chunk_dim);
    const std::int64_t expected = (direct->length_ + direct->chunk_elements_ - 1) / direct->chunk_elements_;
    hsize_t n_chunks = 0;
    Handle space(H5Dget_space(dataset));
    if (H5Dget_num_chunks(dataset, space.get(), &n_chunks) < 0) return nullptr;
    if (static_cast<std::int64_t>(n_chunks) < expected) {
      throw InputError(fmt::format("{}:{}: {} of the {} chunks of its {} values are stored: the chunk index is damaged (the missing "
                                   "chunks would read as 0); re-download or re-export the file",
                                   file_path, h5::object_name(dataset), n_chunks, expected, direct->length_));
    }
    if (static_cast<std::int64_t>(n_chunks) != expected) return nullptr;
    // HDF5 1.10 finds a chunk's address by walking its chunk index from the start on every call
    // (by ordinal or by coordinate): quadratic in the chunks. Many small chunks (a hostile file)
    // or very many of any size: HDF5's own reads (a B-tree search per chunk) read the values.
    if (n_chunks > kMaxAnyDirectChunks || (n_chunks > kMaxDirectChunks && direct->chunk_elements_ < kMinDirectChunkValues)) return nullptr;
    direct->chunks_.resize(n_chunks);
    for (hsize_t i = 0; i < n_chunks; ++i) {
      hsize_t offset = 0;
      unsigned mask = 0;
      haddr_t address = 0;
      hsize_t size = 0;
      if (H5Dget_chunk_info(dataset, space.get(), i, &offset, &mask, &address, &size) < 0) return nullptr;
      const auto position = static_cast<std::size_t>(offset / chunk_dim);
      if (position >= direct->chunks_.size()) return nullptr;
      direct->chunks_[position] = {address, size, direct->deflate_ && (mask & 1u) == 0};
    }
  } else {
    return nullptr;
  }
  if (remote) {
    direct->remote_ = std::move(remote);
  } else {
    direct->fd_ = ::open(file_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (direct->fd_ < 0) return nullptr;
  }
  direct->path_ = file_path;
  direct->num_threads_ = num_threads;
  direct->check_sizes(h5::object_name(dataset));
  return direct;
}

void DirectDataset::check_sizes(const std::string& name) const {
  // Trust no size recorded in the file (issue #19): every byte range read must lie inside the
  // file, an unfiltered chunk holds exactly one chunk of values, and a deflated chunk cannot
  // decode to more than deflate's maximum ratio (1032:1) allows. Allocations are then bounded
  // by the file's size (and a chunk's decoded size by the chunk shape), not by what it claims.
  std::uint64_t file_bytes = 0;
  if (remote_) {
    file_bytes = remote_->size();
  } else {
    struct stat info {};
    if (::fstat(fd_, &info) != 0) throw IoError(fmt::format("{}: cannot read its size", path_));
    file_bytes = static_cast<std::uint64_t>(info.st_size);
  }
  const auto corrupt = [&](const std::string& what) {
    return InputError(fmt::format("{}:{}: {}: the file is corrupt; re-download or re-export it", path_, name, what));
  };
  if (contiguous_) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(length_) * element_bytes_;
    if (length_ > 0 && (base_address_ > file_bytes || bytes > file_bytes - base_address_)) {
      throw corrupt(fmt::format("{} values at byte {} run past the end of the file ({} bytes)", length_, base_address_, file_bytes));
    }
    return;
  }
  const std::uint64_t chunk_bytes = static_cast<std::uint64_t>(chunk_elements_) * element_bytes_;
  for (std::size_t i = 0; i < chunks_.size(); ++i) {
    const Chunk& chunk = chunks_[i];
    if (chunk.stored_bytes == 0) throw corrupt(fmt::format("chunk {} is missing from the chunk index", i));
    if (chunk.address > file_bytes || chunk.stored_bytes > file_bytes - chunk.address) {
      throw corrupt(fmt::format("chunk {} claims {} bytes at byte {}, beyond the file's {} bytes", i, chunk.stored_bytes, chunk.address,
                                file_bytes));
    }
    if (!chunk.filtered && chunk.stored_bytes != chunk_bytes) {
      throw corrupt(fmt::format("chunk {} stores {} bytes, not the {} of a chunk of {} values", i, chunk.stored_bytes, chunk_bytes,
                                chunk_elements_));
    }
    if (chunk.filtered && chunk_bytes > chunk.stored_bytes * 1032 + 1024) {
      throw corrupt(fmt::format("chunk {} of {} compressed bytes cannot hold {} bytes of values", i, chunk.stored_bytes, chunk_bytes));
    }
  }
}

DirectDataset::~DirectDataset() {
  if (fd_ >= 0) ::close(fd_);
}

void read_stored_bytes(int fd, RemoteFile* remote, void* buffer, std::uint64_t bytes, std::uint64_t address, const std::string& path) {
  if (remote != nullptr) {
    remote->read(address, static_cast<std::size_t>(bytes), buffer);
    return;
  }
  auto* cursor = static_cast<unsigned char*>(buffer);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, cursor, bytes, static_cast<off_t>(address));
    if (n <= 0) throw IoError(fmt::format("{}: read failed at byte {} (file truncated?)", path, address));
    cursor += n;
    bytes -= static_cast<std::uint64_t>(n);
    address += static_cast<std::uint64_t>(n);
  }
}

void DirectDataset::pread_exact(void* buffer, std::uint64_t bytes, std::uint64_t address) const {
  read_stored_bytes(fd_, remote_.get(), buffer, bytes, address, path_);
}

template <typename T>
void DirectDataset::convert(const unsigned char* bytes, std::int64_t count, T* out) const {
  auto cast_all = [&](auto tag) {
    using Stored = decltype(tag);
    if constexpr (std::is_same_v<Stored, T>) {
      std::memcpy(out, bytes, static_cast<std::size_t>(count) * sizeof(T));
    } else {
      for (std::int64_t i = 0; i < count; ++i) {
        Stored value;
        std::memcpy(&value, bytes + static_cast<std::size_t>(i) * sizeof(Stored), sizeof(Stored));
        out[i] = static_cast<T>(value);
      }
    }
  };
  switch (element_) {
    case Element::kF32: cast_all(float{}); break;
    case Element::kF64: cast_all(double{}); break;
    case Element::kI8: cast_all(std::int8_t{}); break;
    case Element::kI16: cast_all(std::int16_t{}); break;
    case Element::kI32: cast_all(std::int32_t{}); break;
    case Element::kI64: cast_all(std::int64_t{}); break;
    case Element::kU8: cast_all(std::uint8_t{}); break;
    case Element::kU16: cast_all(std::uint16_t{}); break;
    case Element::kU32: cast_all(std::uint32_t{}); break;
    case Element::kU64: cast_all(std::uint64_t{}); break;
  }
}

template <typename T>
void DirectDataset::read(std::int64_t offset, std::int64_t count, T* out) const {
  if (count <= 0) return;
  if (offset < 0 || offset + count > length_) {
    throw InputError(fmt::format("{}: elements {}..{} requested from a dataset of {}", path_, offset, offset + count, length_));
  }
  const bool same_type = element_bytes_ == sizeof(T) &&
                         ((std::is_same_v<T, float> && element_ == Element::kF32) || (std::is_same_v<T, double> && element_ == Element::kF64) ||
                          (std::is_same_v<T, std::int32_t> && element_ == Element::kI32) ||
                          (std::is_same_v<T, std::int64_t> && element_ == Element::kI64));
  if (contiguous_) {
    // Split into ~8 MB pieces read in parallel.
    const std::int64_t piece = std::max<std::int64_t>(1, (std::int64_t{8} << 20) / static_cast<std::int64_t>(element_bytes_));
    const std::int64_t n_pieces = (count + piece - 1) / piece;
    parallel_for(n_pieces, num_threads_, [&](std::int64_t p) {
      const std::int64_t first = offset + p * piece;
      const std::int64_t n = std::min(piece, offset + count - first);
      const std::uint64_t address = base_address_ + static_cast<std::uint64_t>(first) * element_bytes_;
      T* target = out + (first - offset);
      if (same_type) {
        pread_exact(target, static_cast<std::uint64_t>(n) * element_bytes_, address);
      } else {
        std::vector<unsigned char> buffer(static_cast<std::size_t>(n) * element_bytes_);
        pread_exact(buffer.data(), buffer.size(), address);
        convert(buffer.data(), n, target);
      }
    });
    return;
  }
  const std::int64_t first_chunk = offset / chunk_elements_;
  const std::int64_t last_chunk = (offset + count - 1) / chunk_elements_;
  const auto workers = static_cast<std::size_t>(resolve_threads(num_threads_));
  if (stored_scratch_.size() < workers) {
    stored_scratch_.resize(workers);
    decoded_scratch_.resize(workers);
  }
  parallel_for_workers(last_chunk - first_chunk + 1, num_threads_, [&](std::int64_t i, int worker) {
    const std::int64_t index = first_chunk + i;
    const Chunk& chunk = chunks_[static_cast<std::size_t>(index)];
    const std::int64_t chunk_start = index * chunk_elements_;
    const std::int64_t begin = std::max(offset, chunk_start);
    const std::int64_t end = std::min(offset + count, chunk_start + chunk_elements_);
    // Chunks are stored whole (the last one padded to the full chunk size).
    const std::size_t chunk_bytes = static_cast<std::size_t>(chunk_elements_) * element_bytes_;
    T* target = out + (begin - offset);
    const bool whole_chunk = begin == chunk_start && end == chunk_start + chunk_elements_;
    if (same_type && whole_chunk && !chunk.filtered && chunk.stored_bytes == chunk_bytes) {
      pread_exact(target, chunk_bytes, chunk.address);  // straight into the block
      return;
    }
    auto& stored = stored_scratch_[static_cast<std::size_t>(worker)];
    auto& decoded = decoded_scratch_[static_cast<std::size_t>(worker)];
    if (stored.size() < chunk.stored_bytes) stored.resize(chunk.stored_bytes);
    pread_exact(stored.data(), chunk.stored_bytes, chunk.address);
    const unsigned char* bytes = stored.data();
    if (chunk.filtered && same_type && whole_chunk) {  // inflate straight into the block
      if (!inflate_exact(stored.data(), chunk.stored_bytes, reinterpret_cast<unsigned char*>(target), chunk_bytes)) {
        throw InputError(fmt::format("{}: a gzip chunk at byte {} does not decompress (corrupt file?)", path_, chunk.address));
      }
      return;
    }
    if (chunk.filtered) {
      if (decoded.size() < chunk_bytes) decoded.resize(chunk_bytes);
      if (!inflate_exact(stored.data(), chunk.stored_bytes, decoded.data(), chunk_bytes)) {
        throw InputError(fmt::format("{}: a gzip chunk at byte {} does not decompress (corrupt file?)", path_, chunk.address));
      }
      bytes = decoded.data();
    } else if (chunk.stored_bytes < chunk_bytes) {
      throw InputError(fmt::format("{}: a chunk at byte {} has {} bytes, expected {}", path_, chunk.address, chunk.stored_bytes, chunk_bytes));
    }
    convert(bytes + static_cast<std::size_t>(begin - chunk_start) * element_bytes_, end - begin, target);
  });
}

template void DirectDataset::read<float>(std::int64_t, std::int64_t, float*) const;
template void DirectDataset::read<double>(std::int64_t, std::int64_t, double*) const;
template void DirectDataset::read<std::int32_t>(std::int64_t, std::int64_t, std::int32_t*) const;
template void DirectDataset::read<std::int64_t>(std::int64_t, std::int64_t, std::int64_t*) const;

}  // namespace celltyper::detail
