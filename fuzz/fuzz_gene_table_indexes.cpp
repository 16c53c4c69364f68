// libFuzzer target: a gene table's saved name indexes (GeneTable::save_indexes / restore, the
// binary cache's format 3) damaged by the input, then looked up. The input is read as edits of a
// valid image, so that the fuzzer spends its time near valid indexes: a first byte choosing how
// much of the image is kept (all, cut short, or grown by zero bytes), then (offset, value) pairs of
// 3 bytes each (little-endian 16-bit offset into the image, new byte). A damaged image must be
// refused with InputError or answer look-ups without reading outside its bytes.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

const celltyper::GeneTable& small_table() {
  static const celltyper::GeneTable table = [] {
    std::vector<celltyper::Gene> genes(4);
    genes[0].entrez_id = 916;
    genes[0].symbol = "CD3E";
    genes[0].chromosome = "11";
    genes[0].gene_type = "protein-coding";
    genes[0].ensembl_ids = {"ENSG00000198851"};
    genes[0].aliases = {"T3E", "TCRE"};
    genes[1].entrez_id = 931;
    genes[1].symbol = "MS4A1";
    genes[1].ensembl_ids = {"ENSG00000156738"};
    genes[1].aliases = {"CD20", "B1"};
    genes[2].entrez_id = 4512;
    genes[2].symbol = "COX1";
    genes[2].chromosome = "MT";
    genes[2].aliases = {"MTCO1", "B1"};
    genes[3].entrez_id = 100000001;
    genes[3].symbol = "LOC100000001";
    genes[3].ensembl_ids = {"ENSG00000198851"};
    return celltyper::GeneTable(std::move(genes), "fuzz");
  }();
  return table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const celltyper::GeneTable& table = small_table();
  static const std::string image = [] {
    std::string out;
    small_table().save_indexes(out);
    return out;
  }();
  std::string bytes = image;
  if (size > 0) {
    // 0..127: keep (value + 1) / 128 of the image (127: all of it); 128..255: add (value - 127) * 8 zero bytes.
    if (data[0] < 128) bytes.resize(bytes.size() * (data[0] + 1U) / 128);
    else bytes.append(static_cast<std::size_t>(data[0] - 127) * 8, '\0');
  }
  for (std::size_t i = 1; i + 3 <= size; i += 3) {
    if (bytes.empty()) break;
    const std::size_t offset = (static_cast<std::size_t>(data[i]) | (static_cast<std::size_t>(data[i + 1]) << 8)) % bytes.size();
    bytes[offset] = static_cast<char>(data[i + 2]);
  }
  // 8-byte aligned, as the cache file's mapping gives them; the buffer outlives the table.
  std::vector<std::uint64_t> aligned((bytes.size() + 7) / 8 + 1);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  try {
    const celltyper::GeneTable restored = celltyper::GeneTable::restore(
        table.genes(), "fuzz", "", table.ensembl_prefix(), table.content_hash(),
        std::string_view(reinterpret_cast<const char*>(aligned.data()), bytes.size()));
    for (const char* name : {"CD3E", "cd3e", "MS4A1", "MT-CO1", "mt-co1", "COX1", "ENSG00000198851", "ENSG00000156738.4", "T3E",
                             "B1", "CD20", "LOC100000001", "absent", "X", "ENSG00000000001", "916"}) {
      (void)restored.find_symbol(name);
      (void)restored.find_symbol_case_insensitive(name);
      (void)restored.find_alias(name);
      (void)restored.find_ensembl(name);
      (void)restored.is_known_name(name);
    }
  } catch (const celltyper::Error&) {
  }
  return 0;
}
