// libFuzzer target: text count tables (GEO / R / pandas .csv, .tsv, .txt): open with either
// extension, read obs / var, stream every row and summarise the values as --normalize auto does.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/matrix_summary.hpp>

#include "fuzz_support.hpp"

#include <filesystem>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (const char* name : {"table.csv", "table.txt"}) {
    const std::string path = celltyper::fuzz::scratch_file(name, data, size);
    try {
      const auto dataset = celltyper::open_dataset(path);
      (void)dataset->read_obs();
      (void)dataset->read_var();
      const auto reader = dataset->open_matrix(dataset->matrix_sources().front());
      celltyper::CsrBlock block;
      for (std::int64_t first = 0; first < reader->n_rows(); first += 2) {
        reader->read_rows(first, std::min<std::int64_t>(2, reader->n_rows() - first), block);
      }
      celltyper::SummarizeOptions scan;
      scan.max_rows = 16;
      (void)celltyper::summarize_matrix(*reader, scan);
    } catch (const celltyper::Error&) {
    }
    std::filesystem::remove(path);
  }
  return 0;
}
