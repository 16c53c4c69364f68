// libFuzzer target: celltyper's decoding of AnnData metadata. The input does not become the
// file's bytes (that would fuzz libhdf5's own parser, which the crash guard covers); it drives a
// generator that writes a well-formed HDF5 file whose *content* is hostile: obs/var frames with
// any encoding-type, missing or extra attributes, column-order naming absent columns, index and
// columns of the wrong length or rank, categorical codes outside their categories, nullable
// arrays whose mask disagrees, sparse X with any shape, indptr, indices and values (dense X too).
// celltyper then opens it, reads obs and var, streams every matrix it lists and summarises X.
// Anything but a celltyper::Error (crash, sanitizer report, other exception) is a finding.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/inspect.hpp>

#include "fuzz_support.hpp"

#include <hdf5.h>

#include <cstring>
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
  std::int64_t integer() {  // small values mostly, extremes sometimes
    switch (below(8)) {
      case 0: return -1;
      case 1: return static_cast<std::int64_t>(word()) << 32 | word();
      case 2: return -static_cast<std::int64_t>(word()) - 2;
      default: return below(12);
    }
  }
  double number() {
    switch (below(10)) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -1.5;
      case 3: return 1e30;
      default: return static_cast<double>(below(20)) / 2;
    }
  }
  std::string text() {
    static const char* const kWords[] = {"", "_index", "cell_type", "gene_ids", "CD3E", "MS4A1", "0", "1", "obs", "X", "categorical",
                                         "dataframe", "csr_matrix", "csc_matrix", "array", "string-array", "nullable-integer",
                                         "nullable-boolean", "categories", "codes", "mask", "values", "\xff\xfe", "a,b"};
    return kWords[below(sizeof(kWords) / sizeof(kWords[0]))];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

hid_t string_type() {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

void string_attribute(hid_t object, const char* name, const std::vector<std::string>& values, bool scalar) {
  const hid_t type = string_type();
  const hsize_t n = values.size();
  const hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const hid_t attribute = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<const char*> pointers;
  for (const auto& value : values) pointers.push_back(value.c_str());
  if (attribute >= 0 && !pointers.empty()) H5Awrite(attribute, type, pointers.data());
  if (attribute >= 0) H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
}

void encoding(hid_t object, Choices& in, const char* type, const char* version = "0.2.0") {
  if (in.below(8) == 0) return;  // sometimes no encoding attributes at all
  string_attribute(object, "encoding-type", {in.below(6) == 0 ? in.text() : std::string(type)}, true);
  string_attribute(object, "encoding-version", {in.below(8) == 0 ? in.text() : std::string(version)}, true);
}

void strings(hid_t parent, const char* name, Choices& in, std::size_t n) {
  std::vector<std::string> values(n);
  for (auto& value : values) value = in.text();
  const hid_t type = string_type();
  const hsize_t size = n;
  const hid_t space = H5Screate_simple(1, &size, nullptr);
  const hid_t dataset = H5Dcreate2(parent, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<const char*> pointers;
  for (const auto& value : values) pointers.push_back(value.c_str());
  if (dataset >= 0 && n > 0) H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data());
  if (dataset >= 0) {
    encoding(dataset, in, "string-array");
    H5Dclose(dataset);
  }
  H5Sclose(space);
  H5Tclose(type);
}

/// A numeric dataset of `n` values (rank 1, or rank 2 sometimes) of a chosen type.
void numbers(hid_t parent, const char* name, Choices& in, std::size_t n, bool integral) {
  static const hid_t kIntegers[] = {H5T_NATIVE_INT8, H5T_NATIVE_INT16, H5T_NATIVE_INT32, H5T_NATIVE_INT64, H5T_NATIVE_UINT8, H5T_NATIVE_UINT32};
  static const hid_t kFloats[] = {H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE};
  const hid_t stored = integral ? kIntegers[in.below(6)] : (in.below(4) == 0 ? kIntegers[in.below(6)] : kFloats[in.below(2)]);
  const bool matrix = in.below(10) == 0;
  const hsize_t dims[2] = {matrix ? (n + 1) / 2 : n, hsize_t{matrix ? 2u : 1u}};
  const hid_t space = H5Screate_simple(matrix ? 2 : 1, dims, nullptr);
  const hid_t dataset = H5Dcreate2(parent, name, stored, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (dataset < 0) {
    H5Sclose(space);
    return;
  }
  const std::size_t count = static_cast<std::size_t>(dims[0] * dims[1]);
  if (integral || H5Tget_class(stored) == H5T_INTEGER) {
    std::vector<std::int64_t> values(count);
    for (auto& value : values) value = in.integer();
    if (count > 0) H5Dwrite(dataset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  } else {
    std::vector<double> values(count);
    for (auto& value : values) value = in.number();
    if (count > 0) H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  }
  if (in.below(4) == 0) encoding(dataset, in, "array");
  H5Dclose(dataset);
  H5Sclose(space);
}

/// A length near `n`: usually `n`, sometimes off by one or empty.
std::size_t length_near(Choices& in, std::size_t n) {
  switch (in.below(10)) {
    case 0: return n + 1;
    case 1: return n > 0 ? n - 1 : 0;
    case 2: return 0;
    default: return n;
  }
}

void frame(hid_t file, const char* name, Choices& in, std::size_t n) {
  if (in.below(16) == 0) return;  // no frame at all
  const hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  encoding(group, in, "dataframe");
  const std::string index = in.below(4) == 0 ? in.text() : "_index";
  if (in.below(8) != 0) string_attribute(group, "_index", {index}, true);
  const std::size_t columns = in.below(5);
  std::vector<std::string> order;
  for (std::size_t c = 0; c < columns; ++c) order.push_back(in.below(6) == 0 ? in.text() : "col" + std::to_string(c));
  if (in.below(8) != 0) string_attribute(group, "column-order", order, false);
  if (!index.empty() && index != "col0") strings(group, index.c_str(), in, length_near(in, n));
  for (std::size_t c = 0; c < columns; ++c) {
    const std::string column = "col" + std::to_string(c);
    const std::size_t length = length_near(in, n);
    switch (in.below(5)) {
      case 0:
        numbers(group, column.c_str(), in, length, false);
        break;
      case 1:
        strings(group, column.c_str(), in, length);
        break;
      case 2: {  // categorical: codes may point outside the categories
        const hid_t categorical = H5Gcreate2(group, column.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        encoding(categorical, in, "categorical");
        if (in.flag()) {
          const hid_t space = H5Screate(H5S_SCALAR);
          const hid_t attribute = H5Acreate2(categorical, "ordered", H5T_NATIVE_HBOOL, space, H5P_DEFAULT, H5P_DEFAULT);
          const hbool_t ordered = in.flag();
          if (attribute >= 0) {
            H5Awrite(attribute, H5T_NATIVE_HBOOL, &ordered);
            H5Aclose(attribute);
          }
          H5Sclose(space);
        }
        if (in.below(8) != 0) numbers(categorical, "codes", in, length, true);
        if (in.below(8) != 0) {
          if (in.below(4) == 0) {
            numbers(categorical, "categories", in, in.below(4), false);
          } else {
            strings(categorical, "categories", in, in.below(4));
          }
        }
        H5Gclose(categorical);
        break;
      }
      case 3: {  // nullable integer / boolean: values and mask
        const hid_t nullable = H5Gcreate2(group, column.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        encoding(nullable, in, in.flag() ? "nullable-integer" : "nullable-boolean", "0.1.0");
        if (in.below(8) != 0) numbers(nullable, "values", in, length, true);
        if (in.below(8) != 0) numbers(nullable, "mask", in, length_near(in, length), true);
        H5Gclose(nullable);
        break;
      }
      default: {  // an empty group, or a group where a dataset belongs
        const hid_t odd = H5Gcreate2(group, column.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (in.flag()) encoding(odd, in, "array");
        H5Gclose(odd);
      }
    }
  }
  H5Gclose(group);
}

void shape_attribute(hid_t group, Choices& in, std::int64_t rows, std::int64_t cols) {
  const std::int64_t shape[2] = {in.below(8) == 0 ? in.integer() : rows, in.below(8) == 0 ? in.integer() : cols};
  const hsize_t two = in.below(10) == 0 ? 1 : 2;
  const hid_t space = H5Screate_simple(1, &two, nullptr);
  const hid_t attribute = H5Acreate2(group, "shape", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attribute >= 0) {
    H5Awrite(attribute, H5T_NATIVE_INT64, shape);
    H5Aclose(attribute);
  }
  H5Sclose(space);
}

void matrix(hid_t parent, const char* name, Choices& in, std::size_t n_obs, std::size_t n_var) {
  switch (in.below(4)) {
    case 0:
      return;  // absent
    case 1:
      numbers(parent, name, in, n_obs * n_var, false);  // dense (rank 1 or 2: the reader must check)
      return;
    default: {
      const bool csr = in.flag();
      const hid_t group = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      encoding(group, in, csr ? "csr_matrix" : "csc_matrix", "0.1.0");
      if (in.below(8) != 0) shape_attribute(group, in, static_cast<std::int64_t>(n_obs), static_cast<std::int64_t>(n_var));
      const std::size_t outer = csr ? n_obs : n_var;
      const std::size_t nnz = in.below(12);
      if (in.below(8) != 0) numbers(group, "data", in, length_near(in, nnz), false);
      if (in.below(8) != 0) numbers(group, "indices", in, length_near(in, nnz), true);
      if (in.below(8) != 0) {  // indptr: ascending to nnz usually, anything sometimes
        const std::size_t length = length_near(in, outer + 1);
        const hsize_t size = length;
        const hid_t space = H5Screate_simple(1, &size, nullptr);
        const hid_t dataset = H5Dcreate2(group, "indptr", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        std::vector<std::int64_t> values(length);
        const bool wild = in.below(6) == 0;
        for (std::size_t i = 0; i < length; ++i) {
          values[i] = wild ? in.integer() : static_cast<std::int64_t>(std::min<std::size_t>(nnz, i == 0 ? 0 : values[i - 1] + in.below(4)));
        }
        if (!wild && length > 1) values.back() = static_cast<std::int64_t>(nnz);
        if (dataset >= 0 && length > 0) H5Dwrite(dataset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
        if (dataset >= 0) H5Dclose(dataset);
        H5Sclose(space);
      }
      H5Gclose(group);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = celltyper::fuzz::scratch_file("h5ad.h5ad", nullptr, 0);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Choices in(data, size);
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return 0;
    encoding(file, in, "anndata", "0.1.0");
    const std::size_t n_obs = in.below(6);
    const std::size_t n_var = in.below(6);
    frame(file, "obs", in, n_obs);
    frame(file, "var", in, n_var);
    matrix(file, "X", in, n_obs, n_var);
    if (in.below(4) == 0) {
      const hid_t layers = H5Gcreate2(file, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      encoding(layers, in, "dict", "0.1.0");
      matrix(layers, "counts", in, n_obs, n_var);
      H5Gclose(layers);
    }
    if (in.below(4) == 0) {
      const hid_t raw = H5Gcreate2(file, "raw", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      frame(raw, "var", in, length_near(in, n_var));
      matrix(raw, "X", in, n_obs, n_var);
      H5Gclose(raw);
    }
    H5Fclose(file);
  }
  try {
    const auto dataset = celltyper::open_dataset(path);
    (void)dataset->read_obs();
    (void)dataset->read_var();
    for (const auto& source : dataset->matrix_sources()) {
      (void)dataset->read_var_of(source);
      const auto reader = dataset->open_matrix(source);
      celltyper::for_each_block(*reader, {std::size_t{1} << 12, false}, [](const celltyper::CsrBlock&) {});
    }
    celltyper::InspectOptions options;
    (void)celltyper::inspect_dataset(*dataset, options);
  } catch (const celltyper::Error&) {
  }
  return 0;
}
