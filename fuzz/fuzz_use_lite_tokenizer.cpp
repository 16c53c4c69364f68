// libFuzzer target: the USE-lite tokeniser (UTF-8 decoding, NFKC, trie, Viterbi, back-trace) on
// any bytes. The input's lines before the first empty line are extra vocabulary pieces (all with
// score -1.5, ids after a fixed base vocabulary); the rest is the text. Every id must be a
// vocabulary id.
#include <celltyper/error.hpp>
#include <celltyper/use_lite.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, double>> vocabulary = {
      {"\xef\xbf\xbd", 0}, {"<s>", 0}, {"</s>", 0}, {"r3", 0}, {"r4", 0}, {"r5", 0},
      {"\xe2\x96\x81", -1}, {"a", -2}, {"\xe2\x96\x81" "a", -1}, {"b", -2}, {"\xf0\x9f\xa7\xac", -3}, {"", -1}};
  const std::size_t split = input.find("\n\n");
  std::string_view text = input;
  if (split != std::string_view::npos) {
    std::string_view pieces = input.substr(0, split);
    text = input.substr(split + 2);
    while (!pieces.empty()) {
      const std::size_t end = pieces.find('\n');
      vocabulary.emplace_back(std::string(pieces.substr(0, end)), -1.5);
      if (end == std::string_view::npos) break;
      pieces.remove_prefix(end + 1);
    }
  }
  try {
    const celltyper::UseLiteTokenizer tokenizer(vocabulary);
    for (const std::int32_t id : tokenizer.encode(text))
      if (id < 0 || static_cast<std::size_t>(id) >= vocabulary.size()) std::abort();
  } catch (const celltyper::Error&) {
  }
  return 0;
}
