// LSA, part 1: the biomedical tokeniser, its stop words, and TF-IDF.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_map>

namespace celltyper {

namespace {

/// Sorted stop words (see gene_embedding.hpp for the three groups).
constexpr std::array kStopWords = std::to_array<std::string_view>({
    "a", "about", "above", "across", "activity", "after", "again", "against", "all", "almost", "alone", "along",
    "already", "also", "alternatively", "although", "always", "am", "among", "amongst", "an", "and", "another", "any",
    "are", "as", "at", "be", "became", "because", "become", "becomes", "been", "before", "being", "belong",
    "belonging", "belongs", "below", "beside", "besides", "between", "biological", "both", "but", "by", "can",
    "cannot", "cellular", "component", "could", "described", "did", "do", "does", "doing", "done", "down", "due",
    "during", "each", "either", "else", "encode", "encoded", "encodes", "encoding", "enrichment", "etc", "even",
    "ever", "every", "families", "family", "few", "for", "found", "from", "function", "functions", "further",
    "gene", "genes", "had", "has", "have", "having", "he", "hence", "her", "here", "hers", "herself", "him",
    "himself", "his", "how", "however", "i", "identified", "if", "in", "include", "included", "includes",
    "including", "into", "involved", "involves", "is", "isoform", "isoforms", "it", "its", "itself", "just",
    "known", "least", "less", "like", "likely", "made", "many", "may", "me", "member", "members", "might",
    "molecular", "more", "most", "mostly", "much", "multiple", "must", "my", "myself", "namely", "neither",
    "never", "nevertheless", "no", "nor", "not", "now", "of", "off", "often", "on", "once", "one", "only", "onto",
    "or", "other", "others", "otherwise", "our", "ours", "ourselves", "out", "over", "own", "per", "perhaps",
    "play", "plays", "possibly", "process", "product", "products", "protein", "proteins", "rather", "reported",
    "result", "resulting", "results", "role", "roles", "same", "several", "she", "should", "shown", "since",
    "so", "some", "spliced", "studies", "study", "such", "suggest", "suggests", "summary", "than", "that", "the",
    "their", "theirs", "them", "themselves", "then", "there", "thereby", "therefore", "these", "they", "this",
    "those", "though", "through", "throughout", "thus", "to", "together", "too", "toward", "towards",
    "transcript", "transcripts", "type", "under", "until", "up", "upon", "us", "variant", "variants", "various",
    "very", "via", "was", "we", "well", "were", "what", "whatever", "when", "whence", "whenever", "where",
    "whereas", "whereby", "wherein", "whether", "which", "while", "who", "whole", "whom", "whose", "why", "will",
    "with", "within", "without", "would", "yet", "you", "your", "yours",
});

constexpr bool stop_words_sorted() {
  for (std::size_t i = 1; i < kStopWords.size(); ++i) {
    if (!(kStopWords[i - 1] < kStopWords[i])) return false;
  }
  return true;
}
static_assert(stop_words_sorted(), "kStopWords must be sorted and unique");

/// Greek letter names, by code point offset from U+0391 (capital alpha) and U+03B1 (small alpha).
constexpr std::array<std::string_view, 25> kGreekNames{
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
    "xi", "omicron", "pi", "rho", "sigma" /* final sigma U+03C2 */, "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega"};

/// Latin-1 letters U+00C0..U+00FF folded to lower-case ASCII ("" for the signs U+00D7, U+00F7).
constexpr std::array<std::string_view, 64> kLatin1Letters{
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",   // U+00C0
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",  // U+00D0
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",   // U+00E0
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y"};  // U+00F0

/// If the UTF-8 sequence at text[i] is a Greek letter, the micro sign or a Latin-1 letter, its
/// ASCII spelling ("alpha", "mu", "e") and byte
/// length; else {"", length of the sequence (at least 1)}.
std::pair<std::string_view, std::size_t> decode_non_ascii(std::string_view text, std::size_t i) {
  const auto byte = static_cast<unsigned char>(text[i]);
  std::size_t length = 1;
  if ((byte & 0xE0) == 0xC0) length = 2;
  else if ((byte & 0xF0) == 0xE0) length = 3;
  else if ((byte & 0xF8) == 0xF0) length = 4;
  if (i + length > text.size()) return {{}, 1};
  if (length != 2) return {{}, length};
  const unsigned code = ((byte & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
  if (code == 0xB5) return {"mu", 2};
  if (code >= 0xC0 && code <= 0xFF) return {kLatin1Letters[code - 0xC0], 2};
  if (code >= 0x391 && code <= 0x3A9 && code != 0x3A2) return {kGreekNames[code - 0x391], 2};
  if (code >= 0x3B1 && code <= 0x3C9) return {kGreekNames[code - 0x3B1], 2};
  return {{}, 2};
}

bool is_ascii_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

}  // namespace

const std::vector<std::string_view>& gene_text_stop_words() {
  static const std::vector<std::string_view> words(kStopWords.begin(), kStopWords.end());
  return words;
}

bool is_gene_text_stop_word(std::string_view token) {
  return std::binary_search(kStopWords.begin(), kStopWords.end(), token);
}

std::vector<std::string> tokenize(std::string_view text, const TokenizerOptions& options) {
  std::vector<std::string> tokens;
  const auto keep = [&](std::string_view token) {
    return !token.empty() && token.size() <= options.max_token_length &&
           !(options.remove_stop_words && is_gene_text_stop_word(token));
  };
  std::string raw;
  bool has_hyphen = false;
  const auto flush = [&] {
    while (!raw.empty() && raw.back() == '-') raw.pop_back();
    if (raw.empty()) return;
    if (!has_hyphen) {
      if (keep(raw)) tokens.push_back(raw);
    } else {
      // Numbers joined by hyphens ("10-20") are a range: its numbers are the tokens.
      const bool all_numeric = std::all_of(raw.begin(), raw.end(), [](char c) { return c == '-' || (c >= '0' && c <= '9'); });
      if (!all_numeric) {
        std::string joined;
        joined.reserve(raw.size());
        for (const char c : raw) {
          if (c != '-') joined += c;
        }
        if (keep(joined)) tokens.push_back(joined);
      }
      if (options.split_hyphenated || all_numeric) {
        std::size_t begin = 0;
        while (begin <= raw.size()) {
          std::size_t end = raw.find('-', begin);
          if (end == std::string::npos) end = raw.size();
          const std::string_view part(raw.data() + begin, end - begin);
          const bool numeric = std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
          if ((all_numeric || !numeric) && keep(part)) tokens.emplace_back(part);
          begin = end + 1;
        }
      }
    }
    raw.clear();
    has_hyphen = false;
  };
  // Whether a letter, digit or Greek letter starts at text[i].
  const auto word_character_at = [&](std::size_t i) {
    if (i >= text.size()) return false;
    if (is_ascii_alnum(text[i])) return true;
    return static_cast<unsigned char>(text[i]) >= 0x80 && !decode_non_ascii(text, i).first.empty();
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (is_ascii_alnum(c)) {
      raw += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      ++i;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      const auto [name, length] = decode_non_ascii(text, i);
      if (name.empty()) flush();
      else raw += name;
      i += length;
    } else if (c == '-' && !raw.empty() && raw.back() != '-' && word_character_at(i + 1)) {
      raw += '-';
      has_hyphen = true;
      ++i;
    } else {
      flush();
      ++i;
    }
  }
  flush();
  return tokens;
}

TfidfMatrix tfidf(const std::vector<std::string>& documents, const TfidfOptions& options) {
  if (options.min_document_frequency < 1) {
    throw InputError(fmt::format("tfidf: min_document_frequency must be at least 1, got {}", options.min_document_frequency));
  }
  if (!(options.max_document_fraction > 0 && options.max_document_fraction <= 1)) {
    throw InputError(fmt::format("tfidf: max_document_fraction must be in (0, 1], got {}", options.max_document_fraction));
  }
  const auto n_documents = static_cast<std::int64_t>(documents.size());
  // 1. Per document: distinct tokens (sorted) with counts.
  std::vector<std::vector<std::pair<std::string, std::int32_t>>> counted(documents.size());
  parallel_for(n_documents, options.num_threads, [&](std::int64_t d) {
    std::vector<std::string> tokens = tokenize(documents[static_cast<std::size_t>(d)], options.tokenizer);
    std::sort(tokens.begin(), tokens.end());
    auto& out = counted[static_cast<std::size_t>(d)];
    for (std::size_t i = 0; i < tokens.size();) {
      std::size_t j = i + 1;
      while (j < tokens.size() && tokens[j] == tokens[i]) ++j;
      out.emplace_back(std::move(tokens[i]), static_cast<std::int32_t>(j - i));
      i = j;
    }
  });
  // 2. Document frequencies and the vocabulary (sorted, so indices are independent of order).
  std::unordered_map<std::string_view, std::int64_t> frequency;
  for (const auto& document : counted) {
    for (const auto& [token, count] : document) ++frequency[token];
  }
  const double max_df = options.max_document_fraction * static_cast<double>(n_documents);
  TfidfMatrix out;
  for (const auto& [token, df] : frequency) {
    if (df >= options.min_document_frequency && static_cast<double>(df) <= max_df) out.vocabulary.emplace_back(token);
  }
  std::sort(out.vocabulary.begin(), out.vocabulary.end());
  const auto n_terms = static_cast<std::int64_t>(out.vocabulary.size());
  std::unordered_map<std::string_view, std::int32_t> index_of;
  index_of.reserve(out.vocabulary.size());
  out.document_frequency.resize(out.vocabulary.size());
  out.idf.resize(out.vocabulary.size());
  for (std::int64_t t = 0; t < n_terms; ++t) {
    const std::string_view term = out.vocabulary[static_cast<std::size_t>(t)];
    index_of.emplace(term, static_cast<std::int32_t>(t));
    const std::int64_t df = frequency.at(term);
    out.document_frequency[static_cast<std::size_t>(t)] = df;
    out.idf[static_cast<std::size_t>(t)] =
        options.smooth_idf ? std::log((1.0 + static_cast<double>(n_documents)) / (1.0 + static_cast<double>(df))) + 1.0
                           : std::log(static_cast<double>(n_documents) / static_cast<double>(df)) + 1.0;
  }
  frequency.clear();  // its keys point into `counted`, freed below
  // 3. Rows: tokens are sorted like the vocabulary, so each row's indices come out ascending.
  std::vector<std::int64_t> row_length(documents.size());
  for (std::size_t d = 0; d < counted.size(); ++d) {
    std::int64_t n = 0;
    for (const auto& [token, count] : counted[d]) n += index_of.contains(token) ? 1 : 0;
    row_length[d] = n;
  }
  CsrBlockF64& matrix = out.matrix;
  matrix.reset(0, n_documents, n_terms);
  matrix.indptr.resize(documents.size() + 1);
  matrix.indptr[0] = 0;
  for (std::size_t d = 0; d < counted.size(); ++d) matrix.indptr[d + 1] = matrix.indptr[d] + row_length[d];
  matrix.indices.resize(static_cast<std::size_t>(matrix.indptr.back()));
  matrix.values.resize(static_cast<std::size_t>(matrix.indptr.back()));
  parallel_for(n_documents, options.num_threads, [&](std::int64_t d) {
    std::int64_t position = matrix.indptr[static_cast<std::size_t>(d)];
    const std::int64_t begin = position;
    double sum = 0;
    for (const auto& [token, count] : counted[static_cast<std::size_t>(d)]) {
      const auto found = index_of.find(token);
      if (found == index_of.end()) continue;
      const double tf = options.sublinear_tf ? 1.0 + std::log(static_cast<double>(count)) : static_cast<double>(count);
      const double value = tf * out.idf[static_cast<std::size_t>(found->second)];
      matrix.indices[static_cast<std::size_t>(position)] = found->second;
      matrix.values[static_cast<std::size_t>(position)] = value;
      sum += value * value;
      ++position;
    }
    if (options.normalize && sum > 0) {
      const double scale = 1.0 / std::sqrt(sum);
      for (std::int64_t p = begin; p < position; ++p) matrix.values[static_cast<std::size_t>(p)] *= scale;
    }
    counted[static_cast<std::size_t>(d)] = {};
  });
  return out;
}

}  // namespace celltyper
