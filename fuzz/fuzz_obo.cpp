// libFuzzer target: the OBO parser (Cell Ontology releases). Clean InputErrors are expected;
// anything else (a crash, a sanitizer report, another exception) is a finding.
#include <celltyper/error.hpp>
#include <celltyper/ontology.hpp>

#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream input(std::string(reinterpret_cast<const char*>(data), size));
  try {
    const celltyper::Ontology ontology = celltyper::parse_obo(input, "<fuzz>");
    for (const auto& id : {"CL:0000000", "CL:0000236", "CL:0000084"}) {
      if (ontology.contains(id)) (void)ontology.label(id);
    }
  } catch (const celltyper::Error&) {
  }
  return 0;
}
