// libFuzzer target: the CELLxGENE ontology-guide JSON export parser.
#include <celltyper/error.hpp>
#include <celltyper/ontology.hpp>

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const celltyper::Ontology ontology = celltyper::parse_cellxgene_json(std::string_view(reinterpret_cast<const char*>(data), size), "<fuzz>");
    if (ontology.contains("CL:0000000")) (void)ontology.label("CL:0000000");
  } catch (const celltyper::Error&) {
  }
  return 0;
}
