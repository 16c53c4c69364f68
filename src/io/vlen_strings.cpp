#include "io/vlen_strings.hpp"

#include <celltyper/error.hpp>
#include <celltyper/remote.hpp>

#include "io/direct_read.hpp"
#include "io/hdf5_open.hpp"
#include "io/hdf5_util.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <utility>

namespace celltyper::detail {

using h5::Handle;

namespace {

/// A collection larger than this is taken as damage (libhdf5 makes 4 KiB collections, or one
/// of an object's size for a larger object; no obs/var string comes near this).
constexpr std::uint64_t kMaxCollectionBytes = std::uint64_t{256} << 20;

std::uint64_t little_endian(const unsigned char* bytes, std::size_t n) {
  std::uint64_t value = 0;
  for (std::size_t i = n; i-- > 0;) value = (value << 8) | bytes[i];
  return value;
}

/// The stored bytes of an open HDF5 file: `pread` on the local (sec2) driver's descriptor, or
/// the RemoteFile behind celltyper's remote driver.
class RawFile {
 public:
  static std::optional<RawFile> of(hid_t object) {
    RawFile raw;
    const ssize_t length = H5Fget_name(object, nullptr, 0);
    if (length > 0) {
      raw.path_.resize(static_cast<std::size_t>(length));
      H5Fget_name(object, raw.path_.data(), raw.path_.size() + 1);
    }
    if (RemoteFile* remote = h5::remote_file_of(object)) {
      raw.remote_ = remote;
      raw.size_ = remote->size();
      return raw;
    }
    Handle file(H5Iget_file_id(object));
    if (!file) return std::nullopt;
    Handle access(H5Fget_access_plist(file.get()));
    if (!access || H5Pget_driver(access.get()) != H5FD_SEC2) return std::nullopt;
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) return std::nullopt;
    raw.fd_ = *static_cast<const int*>(handle);
    struct stat info {};
    if (::fstat(raw.fd_, &info) != 0) return std::nullopt;
    raw.size_ = static_cast<std::uint64_t>(info.st_size);
    return raw;
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] bool holds(std::uint64_t address, std::uint64_t bytes) const { return address <= size_ && bytes <= size_ - address; }

  /// Read [address, address + bytes), which `holds` has checked.
  void read(std::uint64_t address, std::size_t bytes, void* out) const { read_stored_bytes(fd_, remote_, out, bytes, address, path_); }

 private:
  std::string path_;  ///< the file's name as HDF5 opened it (for messages)
  int fd_ = -1;
  RemoteFile* remote_ = nullptr;
  std::uint64_t size_ = 0;
};

/// HDF5's shuffle filter stores byte k of every element together; undo it.
std::vector<unsigned char> unshuffle(const std::vector<unsigned char>& in, std::size_t element_bytes) {
  if (element_bytes <= 1) return in;
  const std::size_t elements = in.size() / element_bytes;
  std::vector<unsigned char> out(in.size());
  for (std::size_t byte = 0; byte < element_bytes; ++byte) {
    const unsigned char* plane = in.data() + byte * elements;
    for (std::size_t e = 0; e < elements; ++e) out[e * element_bytes + byte] = plane[e];
  }
  std::copy(in.begin() + static_cast<std::ptrdiff_t>(elements * element_bytes), in.end(),
            out.begin() + static_cast<std::ptrdiff_t>(elements * element_bytes));
  return out;
}

struct Filter {
  H5Z_filter_t id = H5Z_FILTER_NONE;
  std::size_t shuffle_bytes = 0;
};

/// One global heap collection: its bytes and, by object index, where each object's data lies.
struct Collection {
  std::vector<unsigned char> bytes;
  std::map<std::uint64_t, std::pair<std::size_t, std::uint64_t>> objects;  ///< index -> (data offset, size)
};

}  // namespace

std::optional<std::vector<std::string>> read_vlen_strings(hid_t dataset, std::size_t count) {
  if (count == 0) return std::vector<std::string>{};
  std::optional<RawFile> raw = RawFile::of(dataset);
  if (!raw) return std::nullopt;

  Handle file(H5Iget_file_id(dataset));
  Handle creation(H5Fget_create_plist(file.get()));
  std::size_t address_bytes = 0;
  std::size_t length_bytes = 0;
  hsize_t user_block = 0;
  if (!creation || H5Pget_sizes(creation.get(), &address_bytes, &length_bytes) < 0 || H5Pget_userblock(creation.get(), &user_block) < 0) {
    return std::nullopt;
  }
  if (user_block != 0 || address_bytes == 0 || address_bytes > 8 || length_bytes == 0 || length_bytes > 8) return std::nullopt;

  const std::string name = h5::object_name(dataset);
  const std::string& path = raw->path();
  const auto corrupt = [&](const std::string& what) {
    return InputError(fmt::format("{}:{}: {}: the file is corrupt; re-download or re-export it", path, name, what));
  };

  // 1. The stored heap IDs: 4-byte length, collection address, 4-byte object index. Their
  // count comes from the dataset's extent, which the file can claim to be anything: no
  // allocation before it is bounded by what the file's bytes can hold (deflate at most 1032:1).
  const std::size_t element_bytes = 4 + address_bytes + 4;
  if (count > (raw->size() * 1032 + 1024) / element_bytes) {
    throw corrupt(fmt::format("{} strings cannot be stored in a file of {} bytes", count, raw->size()));
  }
  std::vector<std::string> out(count);
  std::vector<unsigned char> ids(count * element_bytes);
  Handle creation_plist(H5Dget_create_plist(dataset));
  const H5D_layout_t layout = H5Pget_layout(creation_plist.get());
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t address = H5Dget_offset(dataset);
    if (address == HADDR_UNDEF) return std::nullopt;  // never written: libhdf5's fill values
    if (!raw->holds(address, ids.size())) {
      throw corrupt(fmt::format("{} strings at byte {} run past the end of the file ({} bytes)", count, address, raw->size()));
    }
    raw->read(address, ids.size(), ids.data());
  } else if (layout == H5D_CHUNKED) {
    std::vector<Filter> filters;
    const int n_filters = H5Pget_nfilters(creation_plist.get());
    for (int f = 0; f < n_filters; ++f) {
      unsigned flags = 0;
      std::array<unsigned, 8> values{};
      std::size_t n_values = values.size();
      const H5Z_filter_t id = H5Pget_filter2(creation_plist.get(), static_cast<unsigned>(f), &flags, &n_values, values.data(), 0, nullptr, nullptr);
      // (libhdf5 refuses fletcher32 on variable-length types; any other filter is left to it.)
      if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE) return std::nullopt;
      // Shuffle's element size is the one its set_local recorded; on vlen types libhdf5 records
      // none and the (optional) filter is skipped for every chunk, which the chunk's mask says.
      filters.push_back({id, id == H5Z_FILTER_SHUFFLE && n_values >= 1 ? values[0] : 0});
    }
    hsize_t chunk_dim = 0;
    if (H5Pget_chunk(creation_plist.get(), 1, &chunk_dim) != 1 || chunk_dim == 0) return std::nullopt;
    const std::uint64_t expected = (count + chunk_dim - 1) / chunk_dim;
    Handle space(H5Dget_space(dataset));
    hsize_t n_chunks = 0;
    if (H5Dget_num_chunks(dataset, space.get(), &n_chunks) < 0) return std::nullopt;
    if (n_chunks < expected) {
      throw corrupt(fmt::format("{} of the {} chunks of its {} strings are stored: the chunk index is damaged", n_chunks, expected, count));
    }
    if (n_chunks != expected) return std::nullopt;
    const std::size_t chunk_bytes = static_cast<std::size_t>(chunk_dim) * element_bytes;
    for (hsize_t i = 0; i < n_chunks; ++i) {
      hsize_t offset = 0;
      unsigned mask = 0;
      haddr_t address = 0;
      hsize_t stored = 0;
      if (H5Dget_chunk_info(dataset, space.get(), i, &offset, &mask, &address, &stored) < 0) return std::nullopt;
      if (offset % chunk_dim != 0 || offset >= count) throw corrupt(fmt::format("chunk {} starts at element {}", i, offset));
      if (!raw->holds(address, stored) || stored > chunk_bytes * 1032 + 1024) {
        throw corrupt(fmt::format("chunk {} claims {} bytes at byte {}, beyond what the file ({} bytes) or a chunk can hold", i, stored, address,
                                  raw->size()));
      }
      std::vector<unsigned char> bytes(static_cast<std::size_t>(stored));
      raw->read(address, bytes.size(), bytes.data());
      for (std::size_t f = filters.size(); f-- > 0;) {  // undo the pipeline, last filter first
        if ((mask & (1u << f)) != 0) continue;  // skipped for this chunk
        if (filters[f].id == H5Z_FILTER_SHUFFLE) {
          if (filters[f].shuffle_bytes == 0) return std::nullopt;  // applied with no size known: leave to libhdf5
          bytes = unshuffle(bytes, filters[f].shuffle_bytes);
        } else {
          std::vector<unsigned char> inflated(chunk_bytes);
          if (!inflate_exact(bytes.data(), bytes.size(), inflated.data(), inflated.size())) {
            throw corrupt(fmt::format("chunk {} does not inflate to the {} bytes of a chunk", i, chunk_bytes));
          }
          bytes = std::move(inflated);
        }
      }
      if (bytes.size() != chunk_bytes) throw corrupt(fmt::format("chunk {} holds {} bytes, not the {} of a chunk", i, bytes.size(), chunk_bytes));
      const std::size_t elements = std::min<std::size_t>(chunk_dim, count - offset);
      std::memcpy(ids.data() + offset * element_bytes, bytes.data(), elements * element_bytes);
    }
  } else {
    return std::nullopt;  // compact: the bytes live in the object header
  }

  // 2. Each element's string from its global heap collection, every size checked.
  std::map<std::uint64_t, Collection> collections;
  std::uint64_t collection_bytes = 0;
  const std::size_t header_bytes = 8 + length_bytes;  // "GCOL", version, 3 reserved, size
  const std::size_t object_header_bytes = 8 + length_bytes;  // index, references, 4 reserved, size
  const auto load = [&](std::uint64_t address) -> const Collection& {
    auto found = collections.find(address);
    if (found != collections.end()) return found->second;
    if (!raw->holds(address, header_bytes)) throw corrupt(fmt::format("a global heap collection at byte {} lies beyond the file", address));
    std::vector<unsigned char> header(header_bytes);
    raw->read(address, header.size(), header.data());
    if (std::memcmp(header.data(), "GCOL", 4) != 0 || header[4] != 1) {
      throw corrupt(fmt::format("no global heap collection at byte {}", address));
    }
    const std::uint64_t size = little_endian(header.data() + 8, length_bytes);
    if (size < header_bytes || size > kMaxCollectionBytes || !raw->holds(address, size)) {
      throw corrupt(fmt::format("the global heap collection at byte {} claims {} bytes", address, size));
    }
    collection_bytes += size;
    if (collection_bytes > raw->size()) throw corrupt("its global heap collections overlap");
    Collection collection;
    collection.bytes.resize(static_cast<std::size_t>(size));
    raw->read(address, collection.bytes.size(), collection.bytes.data());
    std::size_t at = header_bytes;
    while (at + object_header_bytes <= collection.bytes.size()) {
      const unsigned char* object = collection.bytes.data() + at;
      const std::uint64_t index = little_endian(object, 2);
      if (index == 0) break;  // the free space, always last
      const std::uint64_t object_size = little_endian(object + 8, length_bytes);
      const std::size_t data = at + object_header_bytes;
      if (object_size > collection.bytes.size() - data) {
        throw corrupt(fmt::format("object {} of the global heap collection at byte {} claims {} bytes, beyond the collection's {}", index,
                                  address, object_size, size));
      }
      collection.objects.emplace(index, std::make_pair(data, object_size));
      at = data + static_cast<std::size_t>((object_size + 7) / 8 * 8);
    }
    return collections.emplace(address, std::move(collection)).first->second;
  };
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* id = ids.data() + i * element_bytes;
    const std::uint64_t length = little_endian(id, 4);
    const std::uint64_t address = little_endian(id + 4, address_bytes);
    const std::uint64_t index = little_endian(id + 4 + address_bytes, 4);
    if (address == 0) continue;  // a null string
    const Collection& collection = load(address);
    const auto object = collection.objects.find(index);
    if (object == collection.objects.end()) {
      throw corrupt(fmt::format("string {} refers to object {} of the global heap collection at byte {}, which it does not hold", i, index, address));
    }
    if (length > object->second.second) {
      throw corrupt(fmt::format("string {} claims {} bytes, its heap object holds {}", i, length, object->second.second));
    }
    const char* begin = reinterpret_cast<const char*>(collection.bytes.data() + object->second.first);
    out[i].assign(begin, strnlen(begin, static_cast<std::size_t>(length)));
  }
  return out;
}

}  // namespace celltyper::detail
