// Synthesise a large, realistic h5ad by resampling the cells of a real one (with replacement,
// fixed seed): every synthetic cell is a copy of a real cell, so per-cell sparsity, count
// distributions and labels are real. Used by the I/O, embedding and annotation benchmarks.
//
//   resample_h5ad INPUT.h5ad OUTPUT.h5ad N_CELLS [--gzip LEVEL] [--seed S] [--label COLUMN]
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <random>
#include <string>

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: resample_h5ad INPUT.h5ad OUTPUT.h5ad N_CELLS [--gzip LEVEL] [--seed S] [--label COLUMN]\n");
    return 2;
  }
  const std::string input = argv[1];
  const std::string output = argv[2];
  const std::int64_t n_cells = std::atoll(argv[3]);
  int gzip = 0;
  unsigned seed = 42;
  std::string label = "celltype";
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--gzip") gzip = std::atoi(argv[i + 1]);
    if (flag == "--seed") seed = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (flag == "--label") label = argv[i + 1];
  }
  try {
    celltyper::H5adFile source(input);
    auto reader = source.open_matrix("X");
    celltyper::CsrBlock all;
    reader->read_rows(0, reader->n_rows(), all);
    const celltyper::DataFrame obs = source.read_obs();
    const celltyper::Column* labels = obs.find(label);

    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::int64_t> pick(0, source.n_obs() - 1);
    std::vector<std::int64_t> picked(static_cast<std::size_t>(n_cells));
    for (auto& p : picked) p = pick(rng);

    celltyper::H5adWriteOptions options;
    options.gzip_level = gzip;
    options.chunk_values = std::int64_t{1} << 18;
    celltyper::H5adWriter writer(output, n_cells, source.n_vars(), options);
    const std::int64_t block_rows = 10000;
    for (std::int64_t first = 0; first < n_cells; first += block_rows) {
      const std::int64_t count = std::min(block_rows, n_cells - first);
      celltyper::CsrBlock block;
      block.reset(first, count, source.n_vars());
      for (std::int64_t r = 0; r < count; ++r) {
        const auto cell = static_cast<std::size_t>(picked[static_cast<std::size_t>(first + r)]);
        const auto begin = all.indptr[cell];
        const auto end = all.indptr[cell + 1];
        block.indices.insert(block.indices.end(), all.indices.begin() + begin, all.indices.begin() + end);
        block.values.insert(block.values.end(), all.values.begin() + begin, all.values.begin() + end);
        block.indptr.push_back(static_cast<std::int64_t>(block.indices.size()));
      }
      writer.append_rows(block);
    }
    celltyper::DataFrame new_obs;
    std::vector<std::string> source_cell;
    std::vector<std::string> cell_labels;
    for (std::int64_t i = 0; i < n_cells; ++i) {
      const auto cell = static_cast<std::size_t>(picked[static_cast<std::size_t>(i)]);
      new_obs.index.push_back(fmt::format("cell{}", i));
      source_cell.push_back(obs.index[cell]);
      if (labels != nullptr) cell_labels.push_back(labels->value_as_string(cell));
    }
    new_obs.columns.push_back(celltyper::Column::categorical("source_cell", source_cell));
    if (labels != nullptr) new_obs.columns.push_back(celltyper::Column::categorical(label, cell_labels));
    writer.write_obs(new_obs);
    writer.write_var(source.read_var());
    writer.commit();
    fmt::print("wrote {}: {} cells x {} genes resampled from {} (seed {}, gzip {})\n", output, n_cells, source.n_vars(), input, seed, gzip);
  } catch (const celltyper::Error& error) {
    fmt::print(stderr, "resample_h5ad: {}\n", error.what());
    return error.exit_code();
  }
  return 0;
}
