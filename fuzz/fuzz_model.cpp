// libFuzzer target: model files (`celltyper train` output) with hostile content. A small valid
// model (logistic regression or kNN on the expression route, with its reference sample) is saved
// once; each input then edits a copy with well-formed HDF5 calls (the bytes of the file are not
// fuzzed: libhdf5's own parser is the crash guard's job): a dataset overwritten with chosen values
// (NaN, huge, negative, out-of-range codes), a dataset replaced by one of another length or type,
// an attribute replaced by a chosen string or number, a link deleted. celltyper then loads the
// model and, when it loads, annotates a few cells with it. Anything but a celltyper::Error is a
// finding. The edit breaks the file's checksum, which most inputs then clear (see edit()).
#include <celltyper/annotate.hpp>
#include <celltyper/error.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/model_file.hpp>

#include "fuzz_support.hpp"

#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kGenes = 12;

celltyper::GeneTable gene_table() {
  std::vector<celltyper::Gene> genes;
  for (int g = 0; g < kGenes; ++g) {
    celltyper::Gene gene;
    gene.entrez_id = 1001 + g;
    gene.symbol = "G" + std::to_string(g + 1);
    genes.push_back(std::move(gene));
  }
  return celltyper::GeneTable(std::move(genes), "fuzz genes");
}

/// 3 classes x `per_class` cells, class c expressing genes 4c..4c+3.
celltyper::MemoryDataset cells(int per_class, unsigned seed) {
  std::mt19937 rng(seed);
  celltyper::CsrBlockF64 matrix;
  matrix.reset(0, 3 * per_class, kGenes);
  celltyper::DataFrame obs;
  celltyper::DataFrame var;
  std::vector<std::string> labels;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < per_class; ++i) {
      for (int g = 0; g < kGenes; ++g) {
        std::poisson_distribution<int> counts(g / 4 == c ? 6.0 : 0.4);
        const int value = counts(rng);
        if (value == 0) continue;
        matrix.indices.push_back(g);
        matrix.values.push_back(value);
      }
      matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
      labels.push_back("type" + std::to_string(c));
      obs.index.push_back("cell" + std::to_string(obs.index.size()));
    }
  }
  for (int g = 0; g < kGenes; ++g) var.index.push_back("G" + std::to_string(g + 1));
  obs.columns.push_back(celltyper::Column::from_strings("cell_type", labels));
  return celltyper::MemoryDataset("fuzz", obs, var, std::move(matrix));
}

struct World {
  celltyper::GeneTable table = gene_table();
  celltyper::MemoryDataset query = cells(3, 2);
  std::vector<std::string> templates;  // saved valid models
  std::string scratch;
};

const World& world() {
  static const World built = [] {
    World w;
    const celltyper::MemoryDataset reference = cells(10, 1);
    for (const char* classifier : {"logreg", "knn"}) {
      celltyper::TrainOptions options;
      options.label_column = "cell_type";
      options.classifier = classifier;
      options.n_genes = kGenes;
      options.num_threads = 1;
      options.validation_fraction = 0;
      const celltyper::TrainResult trained = celltyper::train_model({&reference}, options, celltyper::GeneStore(), w.table);
      w.templates.push_back(celltyper::fuzz::scratch_file(std::string("template-") + classifier + ".h5", nullptr, 0));
      celltyper::save_model(trained.model, w.templates.back());
    }
    w.scratch = celltyper::fuzz::scratch_file("model.h5", nullptr, 0);
    return w;
  }();
  return built;
}

class Choices {
 public:
  Choices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return position_ < size_ ? data_[position_++] : 0; }
  std::uint32_t below(std::uint32_t n) { return n == 0 ? 0 : (static_cast<std::uint32_t>(byte()) | static_cast<std::uint32_t>(byte()) << 8) % n; }
  double number() {
    static const double kValues[] = {0, 1, -1, 0.5, 3, 1e300, -1e300, 1e-300, 65536, 2147483648.0, -2147483649.0,
                                     std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(), 12, 13, 1001, 1012};
    return kValues[below(sizeof(kValues) / sizeof(kValues[0]))];
  }
  std::string text() {
    static const char* const kWords[] = {"", "logreg", "knn", "mlp", "xgboost", "expression", "genept", "log1p-cp10k", "none", "X",
                                         "{", "{}", "[1,2]", "{\"a\": 1}", "999", "-1", "CL:0000236", "type0", "\xff"};
    return kWords[below(sizeof(kWords) / sizeof(kWords[0]))];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

/// Every dataset and group path of the file, and every (object, attribute) pair.
struct Objects {
  std::vector<std::string> datasets;
  std::vector<std::string> groups;
  std::vector<std::pair<std::string, std::string>> attributes;
};

herr_t attribute_visitor(hid_t, const char* name, const H5A_info_t*, void* data) {
  auto* pair = static_cast<std::pair<Objects*, std::string>*>(data);
  pair->first->attributes.emplace_back(pair->second, name);
  return 0;
}

herr_t object_visitor(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  auto* objects = static_cast<Objects*>(data);
  const std::string path = name;
  if (info->type == H5O_TYPE_DATASET) objects->datasets.push_back(path);
  if (info->type == H5O_TYPE_GROUP) objects->groups.push_back(path);
  const hid_t object = H5Oopen(root, name, H5P_DEFAULT);
  if (object >= 0) {
    std::pair<Objects*, std::string> pair{objects, path};
    H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, nullptr, attribute_visitor, &pair);
    H5Oclose(object);
  }
  return 0;
}

void write_numbers(hid_t parent, const std::string& name, Choices& in, hsize_t n) {
  const hid_t types[] = {H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT, H5T_NATIVE_INT32, H5T_NATIVE_INT64, H5T_NATIVE_UINT8};
  const hid_t type = types[in.below(5)];
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t dataset = H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<double> values(n);
  for (auto& value : values) value = in.number();
  if (dataset >= 0 && n > 0) H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  if (dataset >= 0) H5Dclose(dataset);
  H5Sclose(space);
}

void edit(const std::string& path, Choices& in) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) return;
  Objects objects;
  H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, object_visitor, &objects);
  const int edits = 1 + static_cast<int>(in.below(3));
  for (int e = 0; e < edits; ++e) {
    switch (in.below(4)) {
      case 0: {  // overwrite some values of a numeric dataset (same shape and type)
        if (objects.datasets.empty()) break;
        const std::string& name = objects.datasets[in.below(static_cast<std::uint32_t>(objects.datasets.size()))];
        const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
        if (dataset < 0) break;
        const hid_t type = H5Dget_type(dataset);
        const hid_t space = H5Dget_space(dataset);
        const hssize_t n = H5Sget_simple_extent_npoints(space);
        if (H5Tget_class(type) != H5T_STRING && n > 0) {
          std::vector<double> values(static_cast<std::size_t>(n));
          H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
          const int changes = 1 + static_cast<int>(in.below(4));
          for (int c = 0; c < changes; ++c) values[in.below(static_cast<std::uint32_t>(n))] = in.number();
          H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
        }
        H5Sclose(space);
        H5Tclose(type);
        H5Dclose(dataset);
        break;
      }
      case 1: {  // replace a dataset by one of another length and type
        if (objects.datasets.empty()) break;
        const std::string name = objects.datasets[in.below(static_cast<std::uint32_t>(objects.datasets.size()))];
        const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
        if (dataset < 0) break;
        const hid_t space = H5Dget_space(dataset);
        const hssize_t n = H5Sget_simple_extent_npoints(space);
        H5Sclose(space);
        H5Dclose(dataset);
        H5Ldelete(file, name.c_str(), H5P_DEFAULT);
        const hsize_t length = in.below(3) == 0 ? static_cast<hsize_t>(in.below(40)) : static_cast<hsize_t>(std::max<hssize_t>(0, n + static_cast<int>(in.below(3)) - 1));
        write_numbers(file, name, in, length);
        break;
      }
      case 2: {  // replace an attribute by a string or a number
        if (objects.attributes.empty()) break;
        const auto& [object_name, attribute] = objects.attributes[in.below(static_cast<std::uint32_t>(objects.attributes.size()))];
        const hid_t object = H5Oopen(file, object_name.c_str(), H5P_DEFAULT);
        if (object < 0) break;
        H5Adelete(object, attribute.c_str());
        const hid_t space = H5Screate(H5S_SCALAR);
        if (in.below(2) == 0) {
          const hid_t type = H5Tcopy(H5T_C_S1);
          H5Tset_size(type, H5T_VARIABLE);
          const std::string text = in.text();
          const char* pointer = text.c_str();
          const hid_t a = H5Acreate2(object, attribute.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
          if (a >= 0) {
            H5Awrite(a, type, &pointer);
            H5Aclose(a);
          }
          H5Tclose(type);
        } else {
          const double value = in.number();
          const hid_t a = H5Acreate2(object, attribute.c_str(), H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
          if (a >= 0) {
            H5Awrite(a, H5T_NATIVE_DOUBLE, &value);
            H5Aclose(a);
          }
        }
        H5Sclose(space);
        H5Oclose(object);
        break;
      }
      default: {  // delete a dataset or a group
        const bool group = in.below(4) == 0 && !objects.groups.empty();
        const auto& names = group ? objects.groups : objects.datasets;
        if (names.empty()) break;
        H5Ldelete(file, names[in.below(static_cast<std::uint32_t>(names.size()))].c_str(), H5P_DEFAULT);
        break;
      }
    }
  }
  H5Fclose(file);
  // The edit changed the bytes the model's checksum covers: clear the checksum (as a model written
  // before checksums) so that the loader's own checks are reached; an eighth of the inputs keep it
  // (the damaged-file refusal).
  if (in.below(8) != 7) {  // (an exhausted input reads 0: cleared)
    std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
    const std::string zeros(64, '\0');
    out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const World& w = world();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Choices in(data, size);
  std::filesystem::copy_file(w.templates[in.below(static_cast<std::uint32_t>(w.templates.size()))], w.scratch,
                             std::filesystem::copy_options::overwrite_existing);
  edit(w.scratch, in);
  try {
    const celltyper::CellTypeModel model = celltyper::load_model(w.scratch);
    (void)model.reference.cell_values();  // read on first use otherwise: the fuzzer checks it too
    celltyper::AnnotateOptions options;
    options.embed.num_threads = 1;
    options.allow_low_coverage = true;
    (void)celltyper::annotate_dataset(w.query, {&model}, w.table, options);
  } catch (const celltyper::Error&) {
  }
  return 0;
}
