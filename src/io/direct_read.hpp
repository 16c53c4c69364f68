/// Internal: fast reads of 1-D numeric HDF5 datasets that bypass HDF5's single-threaded
/// filter pipeline. Chunk addresses come from HDF5 (H5Dget_chunk_info) once, at open; reads
/// then `pread` the stored bytes directly and inflate them with libdeflate on several threads.
/// Supported: contiguous datasets, and chunked datasets with no filter or only the deflate
/// (gzip) filter, little-endian integer or IEEE float elements. Anything else returns nullptr
/// from `try_open` and the caller falls back to H5Dread.
#pragma once

#include <celltyper/remote.hpp>

#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace celltyper::detail {

/// Inflate a zlib stream (what HDF5's deflate filter stores) into exactly `out_bytes`; false
/// when the stream is damaged or decodes to another size. Thread-safe.
bool inflate_exact(const unsigned char* in, std::size_t in_bytes, unsigned char* out, std::size_t out_bytes);

/// Read exactly `bytes` stored at `address`: from `remote` when set, else `pread` on `fd`.
/// IoError naming `path` when the file ends first.
void read_stored_bytes(int fd, RemoteFile* remote, void* buffer, std::uint64_t bytes, std::uint64_t address, const std::string& path);

/// Chunked datasets with more chunks than kMaxDirectChunks, of fewer values each than
/// kMinDirectChunkValues, or with more than kMaxAnyDirectChunks, are read by H5Dread: HDF5 1.10
/// lists chunk addresses in time quadratic in their number (8,192 chunks: about a second,
/// 34,000: 23 s; a 2 MB file of 170,000 one-value chunks took over ten minutes). h5py's automatic
/// chunks hold 8 KiB or more (2,048 float32 values), 16,384 of them for 500M values: such files
/// keep their parallel reads up to 65,536 chunks.
inline constexpr std::uint64_t kMaxDirectChunks = 8192;
inline constexpr std::int64_t kMinDirectChunkValues = 1024;
inline constexpr std::uint64_t kMaxAnyDirectChunks = 65536;

class DirectDataset {
 public:
  /// nullptr when the dataset's layout, filters or type are not supported. With `remote` set
  /// (an http(s):// or s3:// file) the stored bytes come from it instead of `pread`.
  static std::unique_ptr<DirectDataset> try_open(hid_t dataset, const std::string& file_path, int num_threads,
                                                 std::shared_ptr<RemoteFile> remote = nullptr);
  ~DirectDataset();
  DirectDataset(const DirectDataset&) = delete;
  DirectDataset& operator=(const DirectDataset&) = delete;

  /// Read elements [offset, offset + count) converted to T (float, double, int32, int64).
  template <typename T>
  void read(std::int64_t offset, std::int64_t count, T* out) const;

 private:
  enum class Element { kF32, kF64, kI8, kI16, kI32, kI64, kU8, kU16, kU32, kU64 };
  struct Chunk {
    std::uint64_t address = 0;
    std::uint64_t stored_bytes = 0;
    bool filtered = true;  ///< false when the filter mask says deflate was skipped
  };
  DirectDataset() = default;

  template <typename T>
  void convert(const unsigned char* bytes, std::int64_t count, T* out) const;
  void pread_exact(void* buffer, std::uint64_t bytes, std::uint64_t address) const;
  /// Throws InputError naming the file and `name` when a recorded size or address does not fit
  /// the file (see the definition).
  void check_sizes(const std::string& name) const;

  std::string path_;
  int fd_ = -1;
  std::shared_ptr<RemoteFile> remote_;
  int num_threads_ = 0;
  Element element_ = Element::kF32;
  std::size_t element_bytes_ = 4;
  std::int64_t length_ = 0;
  bool contiguous_ = false;
  std::uint64_t base_address_ = 0;  ///< contiguous
  bool deflate_ = false;
  std::int64_t chunk_elements_ = 0;
  std::vector<Chunk> chunks_;       ///< by position
  /// Per-worker scratch (stored and decoded chunk bytes), kept across reads so that large
  /// buffers are not page-faulted in again for every block.
  mutable std::vector<std::vector<unsigned char>> stored_scratch_;
  mutable std::vector<std::vector<unsigned char>> decoded_scratch_;
};

}  // namespace celltyper::detail
