/// @file label_mapper.cpp
/// LabelMapper: free-text cell-type labels to Cell Ontology ids.

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include "celltyper/error.hpp"
#include "celltyper/ontology.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>

namespace celltyper {
namespace {

bool is_separator(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-'; }

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (true) {
    const auto tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  for (auto& field : fields) {
    while (!field.empty() && std::isspace(static_cast<unsigned char>(field.back()))) field.pop_back();
    std::size_t first = 0;
    while (first < field.size() && std::isspace(static_cast<unsigned char>(field[first]))) ++first;
    field.erase(0, first);
  }
  return fields;
}

/// Readings of a normalised label as a plural, most likely first: every word "cells" as "cell"
/// ("t cells cd4+"), else the last word without a final "s" ("monocytes"; not "ss", nor a word of
/// one or two letters).
std::vector<std::string> singular_forms(const std::string& key) {
  std::vector<std::string> forms;
  std::string cells;
  std::size_t start = 0;
  while (start <= key.size()) {
    const auto end = std::min(key.find(' ', start), key.size());
    const std::string_view word = std::string_view(key).substr(start, end - start);
    if (!cells.empty()) cells += ' ';
    cells += word == "cells" ? std::string_view("cell") : word;
    start = end + 1;
  }
  if (cells != key) forms.push_back(cells);
  const auto last = key.rfind(' ');
  const std::size_t word = last == std::string::npos ? key.size() : key.size() - last - 1;
  if (forms.empty() && word >= 3 && key.back() == 's' && key[key.size() - 2] != 's') forms.push_back(key.substr(0, key.size() - 1));
  return forms;
}

}  // namespace

const char* to_string(LabelMatchKind kind) {
  switch (kind) {
    case LabelMatchKind::kUserMap: return "user_map";
    case LabelMatchKind::kIdentifier: return "identifier";
    case LabelMatchKind::kLabel: return "label";
    case LabelMatchKind::kSynonym: return "synonym";
    case LabelMatchKind::kCommonAncestor: return "common_ancestor";
    case LabelMatchKind::kShorthand: return "shorthand";
    case LabelMatchKind::kAmbiguous: return "ambiguous";
    case LabelMatchKind::kUnmapped: return "unmapped";
  }
  return "?";
}

std::string normalize_label(std::string_view label) {
  std::string normalized;
  normalized.reserve(label.size());
  bool pending_space = false;
  for (std::size_t i = 0; i < label.size(); ++i) {
    const char c = label[i];
    // A marker's closing '-' says "negative" ("CD16- monocyte", "CD25-"): it stays, so that a
    // "CD16 monocyte" is not read as one.
    const bool marker_sign = c == '-' && i > 0 && std::isalnum(static_cast<unsigned char>(label[i - 1])) != 0 &&
                             (i + 1 == label.size() || is_separator(label[i + 1]));
    if (is_separator(c) && !marker_sign) {
      pending_space = !normalized.empty();
      continue;
    }
    if (pending_space) normalized += ' ';
    pending_space = false;
    normalized += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return normalized;
}

LabelMapper::LabelMapper(const Ontology* ontology, LabelMapperOptions options)
    : ontology_(ontology), options_(options) {
  if (ontology_ == nullptr) return;
  for (std::size_t i = 0; i < ontology_->size(); ++i) {
    const auto index = static_cast<TermIndex>(i);
    const OntologyTerm& term = ontology_->term(index);
    if (std::string key = normalize_label(term.label); !key.empty()) by_label_[key].push_back(index);
    for (const Synonym& synonym : term.synonyms) {
      const bool wanted = synonym.scope == SynonymScope::kExact ? options_.match_exact_synonyms
                                                                 : options_.match_related_synonyms;
      std::string key = normalize_label(synonym.text);
      if (!wanted || key.empty()) continue;
      auto& list = by_synonym_[key];
      if (std::find(list.begin(), list.end(), index) == list.end()) list.push_back(index);
    }
  }
  if (!options_.match_shorthands) return;
  for (const LabelShorthand& shorthand : label_shorthands()) {
    // (an older ontology without the term: the shorthand maps nowhere rather than to an id it lacks)
    if (const auto index = ontology_->find_index(shorthand.cl_id)) by_shorthand_.emplace(shorthand.key, *index);
  }
}

void LabelMapper::add_row(const std::string& dataset, const std::string& label, const std::string& cl_id,
                          const std::string& origin) {
  const std::string key = normalize_label(label);
  if (key.empty()) throw InputError(origin + ": empty label");
  if (cl_id.rfind("CL:", 0) != 0 || cl_id.size() <= 3) {
    throw InputError(origin + ": cl_id '" + cl_id + "' for label '" + label + "' is not a Cell Ontology id (CL:...)");
  }
  if (ontology_ != nullptr && !ontology_->contains(cl_id)) {
    throw InputError(origin + ": cl_id " + cl_id + " for label '" + label + "' is not a term of " +
                     ontology_->source());
  }
  auto& rows = user_rows_[key];
  for (const UserRow& row : rows) {
    if (row.dataset != dataset) continue;
    if (row.cl_id == cl_id) return;  // a repeated row is harmless
    throw InputError(origin + ": label '" + label + "'" + (dataset.empty() ? "" : " of dataset '" + dataset + "'") +
                     " is mapped to " + cl_id + " here but to " + row.cl_id + " at " + row.origin);
  }
  rows.push_back({dataset, cl_id, origin});
}

void LabelMapper::add_mapping(const std::string& dataset, const std::string& label, const std::string& cl_id) {
  add_row(dataset, label, cl_id, "label mapping");
}

void LabelMapper::load_table(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw InputError("label map " + name + " does not exist (or is not a file)");
  }
  std::ifstream stream(path);
  if (!stream) throw InputError("cannot open label map " + name);
  std::string line;
  if (!std::getline(stream, line)) throw InputError("label map " + name + " is empty; expected a header row");
  const std::vector<std::string> header = split_tabs(line);
  const auto column = [&](const std::string& wanted) -> std::ptrdiff_t {
    const auto found = std::find(header.begin(), header.end(), wanted);
    return found == header.end() ? -1 : found - header.begin();
  };
  const std::ptrdiff_t label_column = column("label");
  const std::ptrdiff_t id_column = column("cl_id");
  const std::ptrdiff_t dataset_column = column("dataset");
  if (label_column < 0 || id_column < 0) {
    throw InputError("label map " + name + ": the tab-separated header must name the columns 'label' and " +
                     "'cl_id' (found '" + line + "')");
  }
  std::size_t line_number = 1;
  while (std::getline(stream, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<std::string> fields = split_tabs(line);
    fields.resize(std::max(fields.size(), header.size()));
    const std::string origin = name + " line " + std::to_string(line_number);
    const std::string dataset = dataset_column >= 0 ? fields[static_cast<std::size_t>(dataset_column)] : "";
    add_row(dataset, fields[static_cast<std::size_t>(label_column)], fields[static_cast<std::size_t>(id_column)],
            origin);
  }
  if (stream.bad()) throw IoError("cannot read label map " + name);
}

LabelMatch LabelMapper::map_preferring(std::string_view label, std::string_view dataset) const {
  LabelMatch match = map(label, dataset);
  if (match.mapped() || dataset.empty()) return match;
  LabelMatch any = map(label);
  return any.mapped() ? any : match;
}

std::vector<std::string> LabelMapper::datasets() const {
  std::set<std::string> names;
  for (const auto& [label, rows] : user_rows_) {
    for (const UserRow& row : rows) {
      if (!row.dataset.empty()) names.insert(row.dataset);
    }
  }
  return {names.begin(), names.end()};
}

std::string LabelMapper::unknown_dataset_note(const std::string& dataset) const {
  if (dataset.empty() || user_rows_.empty()) return "";
  const std::vector<std::string> known = datasets();
  if (std::binary_search(known.begin(), known.end(), dataset)) return "";
  const std::string listed = detail::some_of(known, 12);
  return fmt::format("--label-dataset {}: no row of the label map names this dataset ({}): rows of every dataset are used", dataset,
                     known.empty() ? std::string("its rows name none") : "its datasets: " + listed);
}

LabelMatch LabelMapper::finish(std::string_view label, TermIndex index, LabelMatchKind kind) const {
  LabelMatch match;
  match.label = std::string(label);
  match.kind = kind;
  const TermIndex chosen = options_.follow_replaced_by ? ontology_->canonical(index) : index;
  match.cl_id = ontology_->term(chosen).id;
  match.cl_label = ontology_->term(chosen).label;
  return match;
}

LabelMatch LabelMapper::from_candidates(std::string_view label, std::vector<TermIndex> candidates,
                                        LabelMatchKind kind) const {
  // Live terms win over deprecated ones; then replacements are followed and duplicates merged.
  const bool any_live = std::any_of(candidates.begin(), candidates.end(),
                                    [&](TermIndex index) { return !ontology_->term(index).deprecated; });
  if (any_live) {
    std::erase_if(candidates, [&](TermIndex index) { return ontology_->term(index).deprecated; });
  }
  if (options_.follow_replaced_by) {
    for (auto& index : candidates) index = ontology_->canonical(index);
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  if (candidates.size() == 1) return finish(label, candidates.front(), kind);
  LabelMatch match;
  match.label = std::string(label);
  match.kind = LabelMatchKind::kAmbiguous;
  for (const TermIndex index : candidates) match.candidates.push_back(ontology_->term(index).id);
  return match;
}

LabelMatch LabelMapper::map(std::string_view label, std::string_view dataset) const {
  LabelMatch unmapped;
  unmapped.label = std::string(label);
  const std::string key = normalize_label(label);
  if (key.empty()) return unmapped;

  // (a) the user's table.
  if (const auto found = user_rows_.find(key); found != user_rows_.end()) {
    std::vector<std::string> ids;
    const auto collect = [&](auto&& keep) {
      for (const UserRow& row : found->second) {
        if (keep(row) && std::find(ids.begin(), ids.end(), row.cl_id) == ids.end()) ids.push_back(row.cl_id);
      }
    };
    if (dataset.empty()) {
      collect([](const UserRow&) { return true; });
    } else {
      collect([&](const UserRow& row) { return row.dataset == dataset; });
      if (ids.empty()) collect([](const UserRow& row) { return row.dataset.empty(); });
    }
    if (ids.size() == 1) {
      if (ontology_ == nullptr) {
        LabelMatch match = unmapped;
        match.kind = LabelMatchKind::kUserMap;
        match.cl_id = ids.front();
        return match;
      }
      return finish(label, ontology_->index_of(ids.front()), LabelMatchKind::kUserMap);
    }
    if (ids.size() > 1) {
      LabelMatch match = unmapped;
      match.kind = LabelMatchKind::kAmbiguous;
      std::sort(ids.begin(), ids.end());
      match.candidates = std::move(ids);
      return match;
    }
  }
  if (ontology_ == nullptr) return unmapped;

  LabelMatch match = map_name(label, key);
  if (match.mapped() || match.kind == LabelMatchKind::kAmbiguous || label.find_first_of(kAlternativeSeparators) == std::string_view::npos) return match;
  return map_alternatives(label);
}

LabelMatch LabelMapper::map_name(std::string_view label, const std::string& key) const {
  LabelMatch unmapped;
  unmapped.label = std::string(label);
  // (b) the label is an id.
  const auto first = label.find_first_not_of(" \t");
  const auto last = label.find_last_not_of(" \t");
  if (first != std::string_view::npos) {
    std::string id(label.substr(first, last - first + 1));
    if (id.starts_with("CL_")) id[2] = ':';  // (an OBO PURL's form: http://purl.obolibrary.org/obo/CL_0000084)
    if (const auto index = ontology_->find_index(id)) return finish(label, *index, LabelMatchKind::kIdentifier);
  }
  // (c) exact label, or its plural: authors name their clusters "B cells", "Monocytes".
  if (options_.match_labels) {
    if (const auto found = by_label_.find(key); found != by_label_.end()) {
      return from_candidates(label, found->second, LabelMatchKind::kLabel);
    }
    for (const std::string& singular : singular_forms(key)) {
      if (const auto found = by_label_.find(singular); found != by_label_.end()) {
        LabelMatch match = from_candidates(label, found->second, LabelMatchKind::kLabel);
        match.plural = true;
        return match;
      }
    }
  }
  // (e') a shorthand: "CD14+ Mono", "NK", "cDC1". Before the synonyms, whose few clashes with the
  // field's usage it settles: CL gives "CD16+ monocyte" to the CD14-positive, CD16-positive term,
  // where Seurat's and Azimuth's "CD16+ Mono" / "CD16 Mono" are the CD14-low non-classical ones.
  for (const std::string& form : by_shorthand_.empty() ? std::vector<std::string>() : shorthand_forms(key)) {
    if (const auto found = by_shorthand_.find(form); found != by_shorthand_.end()) {
      return from_candidates(label, {found->second}, LabelMatchKind::kShorthand);
    }
  }
  // (d) exact synonym, or its plural.
  if (const auto found = by_synonym_.find(key); found != by_synonym_.end()) {
    return from_candidates(label, found->second, LabelMatchKind::kSynonym);
  }
  for (const std::string& singular : singular_forms(key)) {
    if (const auto found = by_synonym_.find(singular); found != by_synonym_.end()) {
      LabelMatch match = from_candidates(label, found->second, LabelMatchKind::kSynonym);
      match.plural = true;
      return match;
    }
  }
  if (std::all_of(key.begin(), key.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0 || c == ' ' || c == '.'; })) {
    unmapped.reason = kNumberLabelReason;
  }
  return unmapped;
}

LabelMatch LabelMapper::map_alternatives(std::string_view label) const {
  LabelMatch unmapped;
  unmapped.label = std::string(label);
  std::vector<std::string_view> texts;  // as written (a part may be a CL id)
  std::vector<std::string> parts;       // normalised
  for (std::size_t start = 0;;) {
    const auto slash = label.find_first_of(kAlternativeSeparators, start);
    texts.push_back(label.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    parts.push_back(normalize_label(texts.back()));
    if (parts.back().empty()) return unmapped;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 2) return unmapped;
  // The last part's closing words complete a shorter part: "T/NK cells" -> "T cells".
  std::vector<std::string> closings;
  for (auto space = parts.back().find(' '); space != std::string::npos; space = parts.back().find(' ', space + 1)) {
    closings.insert(closings.begin(), parts.back().substr(space));
  }
  std::vector<TermIndex> terms;
  for (std::size_t p = 0; p < parts.size(); ++p) {
    LabelMatch part = map_name(texts[p], parts[p]);
    for (std::size_t c = 0; !part.mapped() && p + 1 < parts.size() && c < closings.size(); ++c) {
      const std::string completed = parts[p] + closings[c];
      part = map_name(completed, completed);
    }
    if (!part.mapped()) {
      unmapped.parts.clear();  // (parts are given only when every part names a term)
      std::vector<std::string> quoted;
      for (const std::string_view text : texts) quoted.push_back(fmt::format("'{}'", text));
      unmapped.reason = fmt::format("read as alternatives {}, and '{}' names no Cell Ontology term",
                                    fmt::join(quoted, label.find('/') == std::string_view::npos ? " | " : " / "), texts[p]);
      return unmapped;
    }
    terms.push_back(ontology_->canonical(ontology_->index_of(part.cl_id)));  // (an obsolete part: its replacement, which has parents)
    unmapped.parts.push_back(part.cl_id);
  }
  std::vector<TermIndex> lowest = ontology_->lowest_common_ancestors(terms);
  // A term above most of the ontology ("animal cell" for "Hepatocytes/T cells") says nothing of a
  // cell, and one far broader than the parts ("secretory cell" for "Sertoli/Leydig cells") little.
  std::vector<std::string> too_broad;
  for (const TermIndex candidate : lowest) {
    if (!ontology_->close_ancestor(candidate, terms)) too_broad.push_back(ontology_->term(candidate).label);
  }
  std::erase_if(lowest, [&](TermIndex candidate) { return !ontology_->close_ancestor(candidate, terms); });
  if (lowest.empty()) {
    unmapped.reason = too_broad.empty()
                          ? std::string("its parts share no ancestor")
                          : fmt::format("the common ancestor of its parts, {}, is too broad to name them (above half of the ontology, or "
                                        "over {} times as broad as the broadest part)",
                                        fmt::join(too_broad, " / "), kCloseAncestorBreadth);
    return unmapped;
  }
  LabelMatch match = from_candidates(label, lowest, LabelMatchKind::kCommonAncestor);
  match.parts = std::move(unmapped.parts);
  return match;
}

std::vector<std::string> LabelMapper::alternatives_within(std::string_view label, const std::string& cl_id) const {
  if (ontology_ == nullptr || label.find_first_of(kAlternativeSeparators) == std::string_view::npos) return {};
  const auto mapped = ontology_->find_index(cl_id);
  if (!mapped) return {};
  const TermIndex whole = ontology_->canonical(*mapped);
  std::vector<TermIndex> parts;
  for (const auto& id : map_alternatives(label).parts) {
    const TermIndex part = ontology_->canonical(ontology_->index_of(id));
    if (part != whole && !ontology_->is_ancestor(whole, part)) return {};
    if (std::find(parts.begin(), parts.end(), part) == parts.end()) parts.push_back(part);
  }
  std::erase_if(parts, [&](TermIndex part) {
    return std::any_of(parts.begin(), parts.end(), [&](TermIndex other) { return other != part && ontology_->is_ancestor(other, part); });
  });
  if (parts.empty() || (parts.size() == 1 && parts.front() == whole)) return {};
  std::vector<std::string> ids;
  ids.reserve(parts.size());
  for (const TermIndex part : parts) ids.push_back(ontology_->term(part).id);
  return ids;
}

std::vector<LabelMatch> LabelMapper::map_all(const std::vector<std::string>& labels, std::string_view dataset) const {
  std::vector<LabelMatch> matches;
  matches.reserve(labels.size());
  for (const auto& label : labels) matches.push_back(map(label, dataset));
  return matches;
}

std::map<std::string, std::string> LabelMapper::to_cl_ids(const std::vector<std::string>& labels,
                                                          std::string_view dataset) const {
  std::map<std::string, std::string> ids;
  for (const auto& label : std::set<std::string>(labels.begin(), labels.end())) {
    LabelMatch match = map(label, dataset);
    if (match.mapped()) ids.emplace(label, std::move(match.cl_id));
  }
  return ids;
}

std::vector<std::string> LabelMapper::unmapped_labels(const std::vector<std::string>& labels,
                                                      std::string_view dataset) const {
  std::vector<std::string> unmapped;
  for (const auto& label : std::set<std::string>(labels.begin(), labels.end())) {
    if (!map(label, dataset).mapped()) unmapped.push_back(label);
  }
  return unmapped;
}

}  // namespace celltyper
