// libFuzzer target: OpenAI Batch API output files (JSONL) as `genes embed --backend openai`
// collects them (no manifest: chat custom ids are decoded directly).
#include <celltyper/error.hpp>
#include <celltyper/openai.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = celltyper::fuzz::scratch_file("batch.jsonl", data, size);
  try {
    (void)celltyper::openai::parse_batch_output({path}, {});
  } catch (const celltyper::Error&) {
  }
  return 0;
}
