// libFuzzer target: celltyper's reading of loom files. As in fuzz_h5ad, the input drives a
// generator of well-formed HDF5 files with hostile content: /matrix and /layers of any rank,
// shape, number type, chunk shape and filter (deflate or none), chunks written as raw stored bytes
// (H5Dwrite_chunk: deflate streams that are truncated or corrupt, chunks whose filter was skipped,
// chunks never written), row / column attributes of any length, rank and type, gene and cell names
// with character references. celltyper then opens it, reads obs and var, streams every matrix in
// blocks of every size it plans and summarises X. Anything but a celltyper::Error is a finding.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/inspect.hpp>

#include "fuzz_support.hpp"

#include <hdf5.h>
#include <zlib.h>

#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

/// Reads decisions from the fuzz input; zeros once it runs out.
class Choices {
 public:
  Choices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return position_ < size_ ? data_[position_++] : 0; }
  std::uint32_t below(std::uint32_t n) { return n == 0 ? 0 : static_cast<std::uint32_t>(word() % n); }
  std::uint32_t word() { return static_cast<std::uint32_t>(byte()) | static_cast<std::uint32_t>(byte()) << 8; }
  bool flag() { return (byte() & 1) != 0; }
  double number() {
    switch (below(10)) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -1.5;
      case 3: return 1e30;
      case 4: return 0.5;
      default: return static_cast<double>(below(6));
    }
  }
  std::string text() {
    static const char* const kWords[] = {"", "CD3E", "MS4A1", "LYZ", "1", "ENSG00000198851", "&#947;", "&#x110000;", "&#;", "&#99999999999;",
                                         "AAACCTGAGAAGGCCT", "&#x3b3", "\xff\xfe", "a&#65;b"};
    return kWords[below(sizeof(kWords) / sizeof(kWords[0]))];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

hid_t number_type(Choices& in) {
  static const hid_t* const kTypes[] = {&H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g, &H5T_NATIVE_UINT16_g, &H5T_NATIVE_INT8_g,
                                        &H5T_NATIVE_INT64_g, &H5T_NATIVE_UINT32_g};
  H5open();
  return *kTypes[in.below(sizeof(kTypes) / sizeof(kTypes[0]))];
}

/// A 2-D matrix (sometimes 1-D or 3-D) of `genes` x `cells`, chunked or not, deflated or not;
/// chunks written through HDF5 or as raw bytes (hostile deflate streams).
void matrix(hid_t parent, const char* name, Choices& in, hsize_t genes, hsize_t cells) {
  const int rank = in.below(8) == 0 ? static_cast<int>(1 + 2 * in.below(2)) : 2;  // 1 or 3 sometimes
  std::array<hsize_t, 3> dims{genes, cells, 2};
  if (in.below(6) == 0) dims[in.below(2)] += 1;  // a shape other than the attributes'
  const hid_t type = number_type(in);
  // Sometimes an extendible cell side, so that chunks may be far wider than the matrix (up to 2^24
  // cells: beyond what celltyper decodes at once).
  const bool extendible = rank == 2 && in.below(6) == 0;
  const std::array<hsize_t, 3> maxdims{dims[0], extendible ? H5S_UNLIMITED : dims[1], dims[2]};
  const hid_t space = H5Screate_simple(rank, dims.data(), maxdims.data());
  const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  const bool chunked = extendible || (in.below(4) != 0 && dims[0] > 0 && dims[1] > 0);
  std::array<hsize_t, 3> chunk{1 + in.below(static_cast<std::uint32_t>(std::max<hsize_t>(dims[0], 1))),
                               extendible ? hsize_t{1} << in.below(25) : 1 + in.below(static_cast<std::uint32_t>(dims[1])), 1};
  const bool deflate = chunked && in.flag();
  if (chunked) {
    H5Pset_chunk(plist, rank, chunk.data());
    if (deflate) H5Pset_deflate(plist, 1);
    if (in.below(8) == 0) {
      const double fill = in.number();
      H5Pset_fill_value(plist, H5T_NATIVE_DOUBLE, &fill);
    }
  }
  const hid_t dataset = H5Dcreate2(parent, name, type, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  if (dataset >= 0) {
    const std::size_t n = static_cast<std::size_t>(dims[0] * dims[1] * (rank == 3 ? dims[2] : 1));
    if ((!chunked || rank != 2 || in.flag()) && !extendible) {
      std::vector<double> values(n);
      for (auto& value : values) value = in.number();
      if (n > 0) H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    } else {  // raw chunks: some missing, some well-formed, some hostile
      const std::size_t element = H5Tget_size(type);
      const std::size_t chunk_bytes = chunk[0] * chunk[1] * element;
      for (hsize_t g = 0; g < dims[0] && chunk_bytes <= (std::size_t{8} << 20); g += chunk[0]) {
        for (hsize_t c = 0; c < dims[1]; c += chunk[1]) {
          const std::uint32_t kind = in.below(5);
          if (kind == 0) continue;  // never written
          std::vector<unsigned char> raw(chunk_bytes);
          for (auto& byte : raw) byte = in.below(3) == 0 ? in.byte() : 0;
          std::vector<unsigned char> stored = raw;
          std::uint32_t mask = 0;
          if (deflate && kind != 4) {
            uLongf bound = compressBound(raw.size());
            stored.resize(bound);
            compress(stored.data(), &bound, raw.data(), raw.size());
            stored.resize(bound);
            if (kind == 2 && !stored.empty()) stored.resize(in.below(static_cast<std::uint32_t>(stored.size())));  // truncated
            if (kind == 3 && !stored.empty()) stored[in.below(static_cast<std::uint32_t>(stored.size()))] ^= 0x5a;  // corrupt
          } else if (deflate) {
            // The filter skipped: raw bytes. (Not of the wrong size: libhdf5 itself reads such a
            // chunk past its end, a bug of its own, as fuzzing the file's bytes would find.)
            mask = 1;
          }
          if (stored.empty()) stored.push_back(0);
          const std::array<hsize_t, 2> offset{g, c};
          H5Dwrite_chunk(dataset, H5P_DEFAULT, mask, offset.data(), stored.size(), stored.data());
        }
      }
    }
    H5Dclose(dataset);
  }
  H5Pclose(plist);
  H5Sclose(space);
}

/// An attribute array of about `length` values: strings (fixed or variable length) or numbers,
/// sometimes 2-D.
void attribute(hid_t group, const std::string& name, Choices& in, hsize_t length) {
  if (in.below(8) == 0) length += 1;
  const bool two_d = in.below(8) == 0;
  const std::array<hsize_t, 2> dims{length, 2};
  const hid_t space = H5Screate_simple(two_d ? 2 : 1, dims.data(), nullptr);
  const std::size_t n = static_cast<std::size_t>(length * (two_d ? 2 : 1));
  if (in.flag()) {
    std::vector<std::string> values(n);
    for (auto& value : values) value = in.text();
    const hid_t type = H5Tcopy(H5T_C_S1);
    if (in.flag()) {
      H5Tset_size(type, H5T_VARIABLE);
      std::vector<const char*> pointers;
      for (const auto& value : values) pointers.push_back(value.c_str());
      const hid_t dataset = H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (dataset >= 0 && n > 0) H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data());
      if (dataset >= 0) H5Dclose(dataset);
    } else {
      const std::size_t width = 16;
      H5Tset_size(type, width);
      std::vector<char> buffer(width * n, '\0');
      for (std::size_t i = 0; i < n; ++i) std::memcpy(buffer.data() + i * width, values[i].data(), std::min(width, values[i].size()));
      const hid_t dataset = H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (dataset >= 0 && n > 0) H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data());
      if (dataset >= 0) H5Dclose(dataset);
    }
    H5Tclose(type);
  } else {
    std::vector<double> values(n);
    for (auto& value : values) value = in.number();
    const hid_t dataset = H5Dcreate2(group, name.c_str(), number_type(in), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dataset >= 0 && n > 0) H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    if (dataset >= 0) H5Dclose(dataset);
  }
  H5Sclose(space);
}

void attributes(hid_t file, const char* group_name, Choices& in, hsize_t length, std::initializer_list<const char*> names) {
  if (in.below(6) == 0) return;
  const hid_t group = H5Gcreate2(file, group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0) return;
  for (const char* name : names) {
    if (in.flag()) attribute(group, name, in, length);
  }
  H5Gclose(group);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = celltyper::fuzz::scratch_file("fuzz.loom", nullptr, 0);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Choices in(data, size);
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return 0;
    const hsize_t genes = in.below(40);
    const hsize_t cells = in.below(70);
    matrix(file, "matrix", in, genes, cells);
    if (in.below(3) == 0) {
      const hid_t layers = H5Gcreate2(file, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      matrix(layers, "spliced", in, genes, cells);
      if (in.flag()) matrix(layers, "unspliced", in, genes, cells);
      H5Gclose(layers);
    }
    attributes(file, "row_attrs", in, genes, {"Gene", "Accession", "Chromosome", "var_names"});
    attributes(file, "col_attrs", in, cells, {"CellID", "ClusterName", "nUMI", "obs_names"});
    H5Fclose(file);
  }
  try {
    const auto dataset = celltyper::open_dataset(path);
    (void)dataset->read_obs();
    (void)dataset->read_var();
    for (const auto& source : dataset->matrix_sources()) {
      const auto reader = dataset->open_matrix(source);
      celltyper::for_each_block(*reader, {std::size_t{1} << 12, false}, [](const celltyper::CsrBlock&) {});
      celltyper::CsrBlockF64 block;
      if (reader->n_rows() > 1) reader->read_rows(1, reader->n_rows() - 1, block);  // unaligned
    }
    celltyper::InspectOptions options;
    (void)celltyper::inspect_dataset(*dataset, options);
  } catch (const celltyper::Error&) {
  }
  return 0;
}
