/// The Universal Sentence Encoder Lite tokeniser (see use_lite.hpp): the unigram segmentation of
/// the @energetic-ai/embeddings package (lib/tokenizer.ts, lib/trie.ts), reproduced id for id.
#include <celltyper/error.hpp>
#include <celltyper/use_lite.hpp>

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>

namespace celltyper {

namespace {

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kSeparator = 0x2581;  // "▁", SentencePiece's word boundary

/// Code points of UTF-8 `text`; a byte that starts no valid sequence reads as U+FFFD.
std::vector<char32_t> decode_utf8(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      out.push_back(byte);
      ++i;
      continue;
    }
    int length = 0;
    char32_t code = 0;
    char32_t minimum = 0;
    if ((byte & 0xE0) == 0xC0) {
      length = 2, code = byte & 0x1F, minimum = 0x80;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3, code = byte & 0x0F, minimum = 0x800;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4, code = byte & 0x07, minimum = 0x10000;
    }
    bool valid = length > 0 && i + static_cast<std::size_t>(length) <= text.size();
    for (int k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      if ((next & 0xC0) != 0x80) valid = false;
      code = (code << 6) | (next & 0x3F);
    }
    if (valid && (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))) valid = false;
    out.push_back(valid ? code : kReplacement);
    i += valid ? static_cast<std::size_t>(length) : 1;
  }
  return out;
}

// ---- NFKC through ICU, loaded on first need ---------------------------------------------------
// ICU's C functions carry the library's major version as a suffix (unorm2_normalize_72); the
// prototypes are declared here so that building needs no ICU headers.
using IcuGetInstance = const void* (*)(int* error);
using IcuNormalize = std::int32_t (*)(const void* normalizer, const char16_t* source, std::int32_t length, char16_t* dest,
                                      std::int32_t capacity, int* error);

struct Icu {
  const void* nfkc = nullptr;
  IcuNormalize normalize = nullptr;
};

Icu load_icu() {
  for (int version = 90; version >= 50; --version) {
    const std::string soname = fmt::format("libicuuc.so.{}", version);
    void* library = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) continue;
    const auto get = reinterpret_cast<IcuGetInstance>(::dlsym(library, fmt::format("unorm2_getNFKCInstance_{}", version).c_str()));
    const auto normalize = reinterpret_cast<IcuNormalize>(::dlsym(library, fmt::format("unorm2_normalize_{}", version).c_str()));
    if (get == nullptr || normalize == nullptr) continue;
    int error = 0;
    const void* nfkc = get(&error);
    if (error > 0 || nfkc == nullptr) continue;
    return {nfkc, normalize};
  }
  throw UnsupportedError(
      "NFKC normalisation of non-ASCII text needs ICU's libicuuc, which cannot be loaded: apt-get install libicu72");
}

const Icu& icu() {
  static const Icu loaded = load_icu();
  return loaded;
}

/// NFKC of `code_points` (JavaScript's String.prototype.normalize("NFKC")).
std::vector<char32_t> nfkc(const std::vector<char32_t>& code_points) {
  std::u16string utf16;
  utf16.reserve(code_points.size() + 8);
  for (const char32_t c : code_points) {
    if (c >= 0x10000) {
      utf16.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
      utf16.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
    } else {
      utf16.push_back(static_cast<char16_t>(c));
    }
  }
  const Icu& library = icu();
  std::u16string normalized(utf16.size() * 3 + 16, u'\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    int error = 0;
    const std::int32_t length = library.normalize(library.nfkc, utf16.data(), static_cast<std::int32_t>(utf16.size()), normalized.data(),
                                                  static_cast<std::int32_t>(normalized.size()), &error);
    constexpr int kBufferOverflow = 15;  // U_BUFFER_OVERFLOW_ERROR
    if (error == kBufferOverflow && attempt == 0) {
      normalized.assign(static_cast<std::size_t>(length) + 1, u'\0');
      continue;
    }
    if (error > 0) throw InputError(fmt::format("NFKC normalisation failed (ICU error {})", error));
    normalized.resize(static_cast<std::size_t>(length));
    break;
  }
  std::vector<char32_t> out;
  out.reserve(normalized.size());
  for (std::size_t i = 0; i < normalized.size(); ++i) {
    const char16_t unit = normalized[i];
    if (unit >= 0xD800 && unit <= 0xDBFF && i + 1 < normalized.size() && normalized[i + 1] >= 0xDC00 && normalized[i + 1] <= 0xDFFF) {
      out.push_back(0x10000 + ((static_cast<char32_t>(unit) - 0xD800) << 10) + (static_cast<char32_t>(normalized[i + 1]) - 0xDC00));
      ++i;
    } else {
      out.push_back(unit);
    }
  }
  return out;
}

std::uint64_t edge_key(std::int32_t node, char32_t code_point) {
  return (static_cast<std::uint64_t>(node) << 21) | static_cast<std::uint64_t>(code_point);
}

}  // namespace

UseLiteTokenizer::UseLiteTokenizer(std::vector<std::pair<std::string, double>> vocabulary, int reserved) {
  if (vocabulary.empty()) throw InputError("the USE-lite vocabulary is empty");
  nodes_.emplace_back();
  std::vector<std::pair<std::uint64_t, std::int32_t>> edges;
  const auto find = [&](std::int32_t node, char32_t c) -> std::int32_t {
    const auto it = std::lower_bound(edges.begin(), edges.end(), std::pair{edge_key(node, c), std::int32_t{-1}});
    return it != edges.end() && it->first == edge_key(node, c) ? it->second : -1;
  };
  pieces_.reserve(vocabulary.size());
  utf16_length_.reserve(vocabulary.size());
  for (std::size_t id = 0; id < vocabulary.size(); ++id) {
    const std::vector<char32_t> symbols = decode_utf8(vocabulary[id].first);
    std::int32_t length = 0;
    for (const char32_t c : symbols) length += c >= 0x10000 ? 2 : 1;
    utf16_length_.push_back(length);
    pieces_.push_back(std::move(vocabulary[id].first));
    if (static_cast<int>(id) < reserved || symbols.empty()) continue;
    std::int32_t node = 0;
    for (const char32_t c : symbols) {
      std::int32_t next = find(node, c);
      if (next < 0) {
        next = static_cast<std::int32_t>(nodes_.size());
        nodes_.emplace_back();
        edges.insert(std::lower_bound(edges.begin(), edges.end(), std::pair{edge_key(node, c), std::int32_t{-1}}),
                     {edge_key(node, c), next});
      }
      node = next;
    }
    nodes_[static_cast<std::size_t>(node)] = {static_cast<std::int32_t>(id), vocabulary[id].second};  // a repeated piece: the last wins
  }
  edges_ = std::move(edges);
}

std::int32_t UseLiteTokenizer::child(std::int32_t node, char32_t code_point) const {
  const std::uint64_t key = edge_key(node, code_point);
  const auto it = std::lower_bound(edges_.begin(), edges_.end(), std::pair{key, std::int32_t{-1}});
  return it != edges_.end() && it->first == key ? it->second : -1;
}

std::vector<std::int32_t> UseLiteTokenizer::encode(std::string_view text) const {
  std::vector<char32_t> input = decode_utf8(text);
  if (std::any_of(input.begin(), input.end(), [](char32_t c) { return c >= 0x80; })) input = nfkc(input);
  if (input.empty()) return {};
  std::vector<char32_t> symbols;
  symbols.reserve(input.size() + 1);
  symbols.push_back(kSeparator);
  for (const char32_t c : input) symbols.push_back(c == U' ' ? kSeparator : c);

  // Candidate pieces by end position, in order of start (the package's nodes[end][start]).
  struct Candidate {
    std::int32_t start;
    std::int32_t id;
    double score;
  };
  const auto n = static_cast<std::int32_t>(symbols.size());
  std::vector<std::vector<Candidate>> ending(static_cast<std::size_t>(n) + 1);
  for (std::int32_t start = 0; start < n; ++start) {
    bool matched = false;
    std::int32_t node = child(0, symbols[static_cast<std::size_t>(start)]);
    for (std::int32_t end = start + 1; node >= 0; ++end) {
      const Node& here = nodes_[static_cast<std::size_t>(node)];
      if (here.id >= 0) {
        ending[static_cast<std::size_t>(end)].push_back({start, here.id, here.score});
        matched = true;
      }
      if (end >= n) break;
      node = child(node, symbols[static_cast<std::size_t>(end)]);
    }
    if (!matched) ending[static_cast<std::size_t>(start) + 1].push_back({start, 0, 0.0});  // unknown, one symbol
  }
  // Viterbi, with the package's comparisons: a best of exactly 0 counts as unset, ties go to the later start.
  std::vector<double> best(static_cast<std::size_t>(n) + 1, 0.0);
  std::vector<std::int32_t> words(static_cast<std::size_t>(n) + 1, 0);
  for (std::int32_t end = 0; end <= n; ++end) {
    for (const Candidate& candidate : ending[static_cast<std::size_t>(end)]) {
      const double score = candidate.score + best[static_cast<std::size_t>(candidate.start)];
      double& current = best[static_cast<std::size_t>(end)];
      if (current == 0.0 || score >= current) {
        current = score;
        words[static_cast<std::size_t>(end)] = candidate.id;
      }
    }
  }
  // Back-trace, stepping by the piece's UTF-16 length as the package does; collapse runs of unknowns.
  std::vector<std::int32_t> reversed;
  for (std::int32_t at = n; at > 0;) {
    const std::int32_t id = words[static_cast<std::size_t>(at)];
    reversed.push_back(id);
    at -= std::max<std::int32_t>(1, utf16_length_[static_cast<std::size_t>(id)]);
  }
  std::vector<std::int32_t> ids;
  ids.reserve(reversed.size());
  bool previous_unknown = false;
  for (const std::int32_t id : reversed) {
    if (!(previous_unknown && id == 0)) ids.push_back(id);
    previous_unknown = id == 0;
  }
  std::reverse(ids.begin(), ids.end());
  return ids;
}

}  // namespace celltyper
