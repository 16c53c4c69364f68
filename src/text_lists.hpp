// Lists of examples in messages: "a, b, c (+7 more)". A message naming what went wrong shows a
// few of the culprits and how many more there are, in one form everywhere.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace celltyper::detail {

/// The first `shown` of `values` (text, or anything fmt formats) joined by `separator`, then
/// " (+N more)" when there are more: "a, b, c (+7 more)".
template <typename Range>
std::string some_of(const Range& values, std::size_t shown, const char* separator = ", ") {
  std::string text;
  std::size_t i = 0;
  for (const auto& value : values) {
    if (i == shown) break;
    text += fmt::format("{}{}", i++ == 0 ? "" : separator, value);
  }
  const auto size = static_cast<std::size_t>(std::size(values));
  if (size > shown) text += fmt::format(" (+{} more)", size - shown);
  return text;
}

/// Examples of something counted while scanning: keeps the text of the first `shown`, counts all.
class Examples {
 public:
  explicit Examples(std::size_t shown) : shown_(shown) {}
  /// Counts one more; `make()` gives its text, called only while fewer than `shown` are kept.
  template <typename Make>
  void add_with(Make&& make) {
    if (kept_.size() < shown_) kept_.push_back(std::forward<Make>(make)());
    ++count_;
  }
  void add(std::string text) {
    add_with([&text] { return std::move(text); });
  }
  [[nodiscard]] std::size_t count() const { return count_; }
  [[nodiscard]] bool empty() const { return count_ == 0; }
  /// "a, b, c (+7 more)".
  [[nodiscard]] std::string str(const char* separator = ", ") const {
    std::string text = some_of(kept_, shown_, separator);
    if (count_ > kept_.size()) text += fmt::format(" (+{} more)", count_ - kept_.size());
    return text;
  }

 private:
  std::size_t shown_;
  std::size_t count_ = 0;
  std::vector<std::string> kept_;
};

/// Levenshtein distance between `a` and `b` (for "did you mean").
inline std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// The one of `candidates` a misspelling of it could give `word` (a typo or two, not another
/// word: at most a third of its length plus one edits), or "".
inline std::string closest_to(const std::string& word, const std::vector<std::string>& candidates) {
  std::string closest;
  std::size_t best = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    if (const std::size_t distance = edit_distance(word, candidate); distance < best) {
      best = distance;
      closest = candidate;
    }
  }
  return closest;
}

/// `text` as a number when all of it is one ("10", "2.5"), else nothing.
inline std::optional<double> whole_number(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

/// Orders names of groups as people read them: numbers in numeric order ("2" before "10":
/// clusters, donors numbered), then text in its given order (stable).
template <typename T, typename Name>
void sort_numbers_first(std::vector<T>& items, Name&& name_of) {
  std::stable_sort(items.begin(), items.end(), [&](const T& a, const T& b) {
    const std::optional<double> x = whole_number(name_of(a));
    const std::optional<double> y = whole_number(name_of(b));
    if (x && y) return *x < *y;
    return x.has_value() && !y.has_value();
  });
}

}  // namespace celltyper::detail
