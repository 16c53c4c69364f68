// libFuzzer target: the Cell Ranger MTX reader (matrix.mtx text; barcodes and genes fixed): open,
// read obs / var, stream every row.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>

#include "fuzz_support.hpp"

#include <filesystem>
#include <fstream>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string dir = [] {
    const std::string path = std::filesystem::path(celltyper::fuzz::scratch_file("unused", nullptr, 0)).parent_path().string() +
                             "/celltyper-fuzz-mtx-" + std::to_string(::getpid());
    std::filesystem::create_directories(path);
    std::ofstream(path + "/barcodes.tsv") << "AAAC-1\nAAAG-1\nAAAT-1\n";
    std::ofstream(path + "/genes.tsv") << "ENSG00000198851\tCD3E\nENSG00000156738\tMS4A1\nENSG00000163736\tPPBP\nENSG00000090382\tLYZ\n";
    return path;
  }();
  std::ofstream(dir + "/matrix.mtx", std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    const auto dataset = celltyper::open_dataset(dir);
    (void)dataset->read_obs();
    (void)dataset->read_var();
    const auto reader = dataset->open_matrix(dataset->matrix_sources().front());
    celltyper::CsrBlock block;
    for (std::int64_t first = 0; first < reader->n_rows(); first += 2) {
      reader->read_rows(first, std::min<std::int64_t>(2, reader->n_rows() - first), block);
    }
  } catch (const celltyper::Error&) {
  }
  return 0;
}
