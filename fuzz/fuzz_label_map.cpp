// libFuzzer target: the label -> Cell Ontology id table (layout of label_map_to_cell_ontology.tsv).
#include <celltyper/error.hpp>
#include <celltyper/ontology.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = celltyper::fuzz::scratch_file("labels.tsv", data, size);
  try {
    celltyper::LabelMapper mapper(nullptr);
    mapper.load_table(path);
    for (const char* label : {"B", "CD14+ Mono", "T cell", "", "CL:0000236"}) {
      (void)mapper.map(label);
      (void)mapper.map(label, "pbmc3k-seurat-labels");
    }
  } catch (const celltyper::Error&) {
  }
  return 0;
}
