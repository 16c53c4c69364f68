// Where embeddings go: .npy, a standalone HDF5 file, or obsm of an h5ad copy. Every sink
// writes through an OutputFile (a temporary file beside the target, renamed when complete).
#include <celltyper/embed_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/output_file.hpp>

#include "io/hdf5_util.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace celltyper {

namespace {

/// NumPy .npy v1.0: magic, header dict padded so the data starts at a multiple of 64 bytes.
class NpySink final : public EmbeddingSink {
 public:
  explicit NpySink(std::string path) : path_(std::move(path)), output_(path_) {}
  ~NpySink() override {
    if (file_ != nullptr) std::fclose(file_);
  }
  void begin(std::int64_t n_cells, int dims) override {
    dims_ = dims;
    file_ = std::fopen(output_.temporary().c_str(), "wbx");
    if (file_ == nullptr) throw IoError(fmt::format("{}: cannot create (directory missing or not writable?)", path_));
    std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", n_cells, dims);
    const std::size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header.push_back('\n');
    const std::uint16_t length = static_cast<std::uint16_t>(header.size());
    const char magic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    put(magic, sizeof(magic));
    put(&length, 2);
    put(header.data(), header.size());
  }
  void write(std::int64_t, std::int64_t n_rows, const float* values, const CellEmbedStats&) override {
    // Rows arrive in order; a block is rows x dims contiguous floats.
    put(values, static_cast<std::size_t>(n_rows) * static_cast<std::size_t>(dims_) * sizeof(float));
  }
  void finish(const nlohmann::json&) override {
    if (std::fflush(file_) != 0 || fsync(fileno(file_)) != 0 || std::fclose(file_) != 0) {
      file_ = nullptr;
      throw IoError(fmt::format("{}: write failed (disk full?)", path_));
    }
    file_ = nullptr;
    output_.commit();
  }

 private:
  void put(const void* data, std::size_t bytes) {
    if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) throw IoError(fmt::format("{}: write failed (disk full?)", path_));
  }
  std::string path_;
  OutputFile output_;  ///< removes the temporary file unless committed
  std::FILE* file_ = nullptr;
  int dims_ = 0;
};

class Hdf5Sink final : public EmbeddingSink {
 public:
  Hdf5Sink(std::string path, std::vector<std::string> obs_names)
      : path_(std::move(path)), output_(path_), obs_names_(std::move(obs_names)) {}
  ~Hdf5Sink() override {
    auto lock = h5::hdf5_lock();
    dataset_.reset();
    file_.reset();
  }
  void begin(std::int64_t n_cells, int dims) override {
    auto lock = h5::hdf5_lock();
    h5::silence_hdf5_errors();
    dims_ = dims;
    file_ = h5::Handle(H5Fcreate(output_.temporary().c_str(), H5F_ACC_EXCL, h5::untimed_file_plist().get(), H5P_DEFAULT));
    if (!file_) throw IoError(fmt::format("{}: cannot create (directory missing or not writable?)", path_));
    const std::array<hsize_t, 2> shape{static_cast<hsize_t>(n_cells), static_cast<hsize_t>(dims)};
    h5::Handle space(H5Screate_simple(2, shape.data(), nullptr));
    dataset_ = h5::Handle(H5Dcreate2(file_.get(), "embeddings", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, h5::untimed_dataset_plist().get(), H5P_DEFAULT));
    empty_.assign(static_cast<std::size_t>(n_cells), 0);
  }
  void write(std::int64_t first_row, std::int64_t n_rows, const float* values, const CellEmbedStats& stats) override {
    std::copy(stats.empty.begin(), stats.empty.end(), empty_.begin() + first_row);
    if (n_rows == 0) return;
    auto lock = h5::hdf5_lock();
    h5::Handle file_space(H5Dget_space(dataset_.get()));
    const std::array<hsize_t, 2> start{static_cast<hsize_t>(first_row), 0};
    const std::array<hsize_t, 2> count{static_cast<hsize_t>(n_rows), static_cast<hsize_t>(dims_)};
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    h5::Handle memory_space(H5Screate_simple(2, count.data(), nullptr));
    if (H5Dwrite(dataset_.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(), H5P_DEFAULT, values) < 0) {
      throw IoError(fmt::format("{}: write failed (disk full?)", path_));
    }
  }
  void finish(const nlohmann::json& provenance) override {
    {
      auto lock = h5::hdf5_lock();
      h5::write_string_attribute(dataset_.get(), "provenance", provenance.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      dataset_.reset();
      if (!obs_names_.empty()) h5::write_strings(file_.get(), "obs_names", obs_names_);
      h5::write_1d(file_.get(), "empty", empty_.data(), static_cast<std::int64_t>(empty_.size()));
      if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: flush failed (disk full?)", path_));
      file_.reset();
    }
    output_.commit();
  }

 private:
  std::string path_;
  OutputFile output_;  ///< removes the temporary file unless committed
  std::vector<std::string> obs_names_;
  std::vector<std::uint8_t> empty_;
  h5::Handle file_;
  h5::Handle dataset_;
  int dims_ = 0;
};

class H5adObsmSink final : public EmbeddingSink {
 public:
  H5adObsmSink(std::string input, std::string output, std::string key, bool in_place)
      : input_(std::move(input)), output_(std::move(output)), key_(std::move(key)), in_place_(in_place) {}
  void begin(std::int64_t n_cells, int dims) override {
    stream_ = std::make_unique<H5adObsmStream>(input_, output_, key_, dims, in_place_);
    empty_.assign(static_cast<std::size_t>(n_cells), 0);
  }
  void write(std::int64_t first_row, std::int64_t n_rows, const float* values, const CellEmbedStats& stats) override {
    std::copy(stats.empty.begin(), stats.empty.end(), empty_.begin() + first_row);
    stream_->write_rows(first_row, n_rows, values);
  }
  void finish(const nlohmann::json& provenance) override {
    H5adAdditions additions;
    additions.obs_columns.push_back(Column::from_bools("celltyper_embedding_empty", empty_));
    additions.uns_strings["celltyper_embedding"] = provenance.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    stream_->commit(additions);
  }

 private:
  std::string input_;
  std::string output_;
  std::string key_;
  bool in_place_ = false;
  std::vector<std::uint8_t> empty_;
  std::unique_ptr<H5adObsmStream> stream_;
};

}  // namespace

std::unique_ptr<EmbeddingSink> make_npy_sink(const std::string& path) { return std::make_unique<NpySink>(path); }
std::unique_ptr<EmbeddingSink> make_hdf5_sink(const std::string& path, std::vector<std::string> obs_names) {
  return std::make_unique<Hdf5Sink>(path, std::move(obs_names));
}
std::unique_ptr<EmbeddingSink> make_h5ad_obsm_sink(const std::string& input, const std::string& output, const std::string& key,
                                                   bool in_place) {
  return std::make_unique<H5adObsmSink>(input, output, key, in_place);
}

}  // namespace celltyper
