// libFuzzer target: the gene-table TSV reader (layout of human_genes.tsv) and name look-ups.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = celltyper::fuzz::scratch_file("genes.tsv", data, size);
  try {
    const celltyper::GeneTable table = celltyper::load_gene_table_tsv(path);
    for (const char* name : {"CD3E", "MT-CO1", "ENSG00000198851", "916", "T3E"}) {
      (void)table.find_symbol(name);
      (void)table.find_alias(name);
      (void)table.find_ensembl(name);
      (void)table.is_known_name(name);
    }
    (void)table.content_hash();
  } catch (const celltyper::Error&) {
  }
  return 0;
}
