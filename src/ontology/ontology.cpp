/// @file ontology.cpp
/// The Ontology class: index, is_a closures, depth, lowest common ancestors, relations.

#include "celltyper/ontology.hpp"


#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <limits>
#include <utility>

#include "celltyper/error.hpp"
#include "celltyper/installed_files.hpp"

namespace celltyper {

const char* to_string(SynonymScope scope) {
  switch (scope) {
    case SynonymScope::kExact: return "EXACT";
    case SynonymScope::kRelated: return "RELATED";
    case SynonymScope::kBroad: return "BROAD";
    case SynonymScope::kNarrow: return "NARROW";
  }
  return "?";
}

const char* to_string(TermRelation relation) {
  switch (relation) {
    case TermRelation::kExact: return "exact";
    case TermRelation::kPredictionIsAncestor: return "parent";
    case TermRelation::kPredictionIsDescendant: return "child";
    case TermRelation::kSibling: return "sibling";
    case TermRelation::kUnrelated: return "unrelated";
  }
  return "?";
}

namespace {

bool is_cell_ontology_id(std::string_view id) { return id.size() > 3 && id.substr(0, 3) == "CL:"; }

}  // namespace

Ontology::Ontology(std::vector<OntologyTerm> terms, std::string source, std::string version)
    : source_(std::move(source)), version_(std::move(version)) {
  terms_.reserve(terms.size());
  for (auto& term : terms) {
    if (!is_cell_ontology_id(term.id)) continue;
    const auto index = static_cast<TermIndex>(terms_.size());
    if (!index_by_id_.emplace(term.id, index).second) {
      throw InputError("ontology " + source_ + ": term " + term.id + " is defined twice");
    }
    terms_.push_back(std::move(term));
  }
  const std::size_t n = terms_.size();
  parents_.assign(n, {});
  children_.assign(n, {});
  for (std::size_t i = 0; i < n; ++i) {
    auto& declared = terms_[i].parents;
    // Keep only CL parents defined here, in file order without duplicates.
    std::vector<std::string> kept;
    for (const auto& parent : declared) {
      const auto found = index_by_id_.find(parent);
      if (found == index_by_id_.end()) continue;
      if (std::find(kept.begin(), kept.end(), parent) != kept.end()) continue;
      if (found->second == static_cast<TermIndex>(i)) {
        throw InputError("ontology " + source_ + ": term " + parent + " is_a itself");
      }
      kept.push_back(parent);
      parents_[i].push_back(found->second);
      children_[static_cast<std::size_t>(found->second)].push_back(static_cast<TermIndex>(i));
    }
    declared = std::move(kept);
  }
  for (auto& list : parents_) std::sort(list.begin(), list.end());
  for (auto& list : children_) std::sort(list.begin(), list.end());

  // Topological order, parents before children (Kahn's algorithm).
  std::vector<std::size_t> pending(n);
  std::deque<TermIndex> ready;
  for (std::size_t i = 0; i < n; ++i) {
    pending[i] = parents_[i].size();
    if (pending[i] == 0) ready.push_back(static_cast<TermIndex>(i));
  }
  std::vector<TermIndex> order;
  order.reserve(n);
  while (!ready.empty()) {
    const TermIndex current = ready.front();
    ready.pop_front();
    order.push_back(current);
    for (const TermIndex child : children_[static_cast<std::size_t>(current)]) {
      if (--pending[static_cast<std::size_t>(child)] == 0) ready.push_back(child);
    }
  }
  if (order.size() != n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (pending[i] != 0) {
        throw InputError("ontology " + source_ + ": the is_a hierarchy has a cycle at or above " + terms_[i].id);
      }
    }
  }

  // Ancestor closure with shortest distances, using a dense scratch array.
  ancestors_.assign(n, {});
  ancestor_distances_.assign(n, {});
  constexpr std::int32_t kUnset = std::numeric_limits<std::int32_t>::max();
  std::vector<std::int32_t> best(n, kUnset);
  std::vector<TermIndex> touched;
  for (const TermIndex current : order) {
    touched.clear();
    const auto visit = [&](TermIndex ancestor, std::int32_t distance) {
      auto& slot = best[static_cast<std::size_t>(ancestor)];
      if (slot == kUnset) touched.push_back(ancestor);
      slot = std::min(slot, distance);
    };
    for (const TermIndex parent : parents_[static_cast<std::size_t>(current)]) {
      visit(parent, 1);
      const auto& above = ancestors_[static_cast<std::size_t>(parent)];
      const auto& above_distance = ancestor_distances_[static_cast<std::size_t>(parent)];
      for (std::size_t k = 0; k < above.size(); ++k) visit(above[k], above_distance[k] + 1);
    }
    std::sort(touched.begin(), touched.end());
    auto& closure = ancestors_[static_cast<std::size_t>(current)];
    auto& distances = ancestor_distances_[static_cast<std::size_t>(current)];
    closure = touched;
    distances.reserve(touched.size());
    for (const TermIndex ancestor : touched) {
      distances.push_back(best[static_cast<std::size_t>(ancestor)]);
      best[static_cast<std::size_t>(ancestor)] = kUnset;
    }
  }

  descendants_.assign(n, {});
  for (std::size_t i = 0; i < n; ++i) {
    for (const TermIndex ancestor : ancestors_[i]) {
      descendants_[static_cast<std::size_t>(ancestor)].push_back(static_cast<TermIndex>(i));
    }
  }  // pushed in increasing i, so each list is already sorted

  if (const auto found = index_by_id_.find(std::string(kCellOntologyRoot)); found != index_by_id_.end()) {
    root_ = found->second;
  }
  depth_.assign(n, -1);
  if (root_ >= 0) {
    for (std::size_t i = 0; i < n; ++i) {
      if (static_cast<TermIndex>(i) == root_) {
        depth_[i] = 0;
      } else if (const auto distance = distance_up(static_cast<TermIndex>(i), root_)) {
        depth_[i] = *distance;
      }
    }
  }
}

std::optional<TermIndex> Ontology::find_index(std::string_view id) const {
  const auto found = index_by_id_.find(std::string(id));
  if (found == index_by_id_.end()) return std::nullopt;
  return found->second;
}

TermIndex Ontology::index_of(std::string_view id) const {
  if (const auto index = find_index(id)) return *index;
  throw InputError("unknown Cell Ontology term '" + std::string(id) + "' (not in " +
                   (source_.empty() ? std::string("the ontology") : source_) + ")");
}

const OntologyTerm& Ontology::term(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < terms_.size());
  return terms_[static_cast<std::size_t>(index)];
}

std::optional<TermIndex> Ontology::root() const {
  if (root_ < 0) return std::nullopt;
  return root_;
}

TermIndex Ontology::canonical(TermIndex index) const {
  TermIndex current = index;
  // A chain can be at most size() long without repeating; stop at a repeat (a replaced_by loop).
  for (std::size_t step = 0; step < terms_.size(); ++step) {
    const OntologyTerm& current_term = term(current);
    if (!current_term.deprecated || current_term.replaced_by.empty()) break;
    const auto next = find_index(current_term.replaced_by);
    if (!next || *next == current) break;
    current = *next;
  }
  return current;
}

std::string Ontology::canonical(std::string_view id) const { return term(canonical(index_of(id))).id; }

const std::vector<TermIndex>& Ontology::parent_indices(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < parents_.size());
  return parents_[static_cast<std::size_t>(index)];
}

const std::vector<TermIndex>& Ontology::child_indices(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < children_.size());
  return children_[static_cast<std::size_t>(index)];
}

const std::vector<TermIndex>& Ontology::ancestor_indices(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < ancestors_.size());
  return ancestors_[static_cast<std::size_t>(index)];
}

const std::vector<std::int32_t>& Ontology::ancestor_distances(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < ancestor_distances_.size());
  return ancestor_distances_[static_cast<std::size_t>(index)];
}

const std::vector<TermIndex>& Ontology::descendant_indices(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < descendants_.size());
  return descendants_[static_cast<std::size_t>(index)];
}

bool Ontology::is_ancestor(TermIndex ancestor, TermIndex term) const {
  const auto& closure = ancestor_indices(term);
  return std::binary_search(closure.begin(), closure.end(), ancestor);
}

std::optional<std::int32_t> Ontology::distance_up(TermIndex term, TermIndex ancestor) const {
  if (term == ancestor) return 0;
  const auto& closure = ancestor_indices(term);
  const auto found = std::lower_bound(closure.begin(), closure.end(), ancestor);
  if (found == closure.end() || *found != ancestor) return std::nullopt;
  return ancestor_distances(term)[static_cast<std::size_t>(found - closure.begin())];
}

std::int32_t Ontology::depth(TermIndex index) const {
  assert(index >= 0 && static_cast<std::size_t>(index) < depth_.size());
  return depth_[static_cast<std::size_t>(index)];
}

std::vector<TermIndex> Ontology::lowest_common_ancestors(TermIndex a, TermIndex b) const { return lowest_common_ancestors({a, b}); }

std::vector<TermIndex> Ontology::lowest_common_ancestors(const std::vector<TermIndex>& terms) const {
  // Closures including self, then their intersection.
  const auto with_self = [this](TermIndex index) {
    std::vector<TermIndex> closure = ancestor_indices(index);
    closure.insert(std::upper_bound(closure.begin(), closure.end(), index), index);
    return closure;
  };
  std::vector<TermIndex> common = with_self(terms.front());
  for (std::size_t t = 1; t < terms.size(); ++t) {
    const std::vector<TermIndex> closure = with_self(terms[t]);
    std::vector<TermIndex> kept;
    std::set_intersection(common.begin(), common.end(), closure.begin(), closure.end(), std::back_inserter(kept));
    common = std::move(kept);
  }
  // A common ancestor is lowest when it is not an ancestor of another common ancestor.
  std::vector<TermIndex> lowest;
  for (const TermIndex candidate : common) {
    const bool dominated = std::any_of(common.begin(), common.end(), [&](TermIndex other) {
      return other != candidate && is_ancestor(candidate, other);
    });
    if (!dominated) lowest.push_back(candidate);
  }
  return lowest;
}

bool Ontology::close_ancestor(TermIndex ancestor, const std::vector<TermIndex>& terms) const {
  std::size_t widest = 0;  // terms at or below the broadest of `terms`
  for (const TermIndex term : terms) widest = std::max(widest, descendant_indices(term).size() + 1);
  return !above_most_terms(ancestor) && descendant_indices(ancestor).size() + 1 <= kCloseAncestorBreadth * widest;
}

std::optional<std::int32_t> Ontology::upward_lca_distance(TermIndex prediction, TermIndex truth) const {
  if (prediction == truth) return 0;
  std::optional<std::int32_t> nearest;
  for (const TermIndex ancestor : lowest_common_ancestors(prediction, truth)) {
    const auto distance = distance_up(truth, ancestor);
    assert(distance.has_value());
    if (!nearest || *distance < *nearest) nearest = *distance;
  }
  return nearest;
}

TermRelation Ontology::classify_relation(TermIndex prediction, TermIndex truth) const {
  if (prediction == truth) return TermRelation::kExact;
  if (is_ancestor(prediction, truth)) return TermRelation::kPredictionIsAncestor;
  if (is_ancestor(truth, prediction)) return TermRelation::kPredictionIsDescendant;
  const auto& parents_prediction = parent_indices(prediction);
  const auto& parents_truth = parent_indices(truth);
  // Both lists are sorted: a linear merge finds a shared direct parent.
  auto left = parents_prediction.begin();
  auto right = parents_truth.begin();
  while (left != parents_prediction.end() && right != parents_truth.end()) {
    if (*left == *right) return TermRelation::kSibling;
    if (*left < *right) {
      ++left;
    } else {
      ++right;
    }
  }
  return TermRelation::kUnrelated;
}

std::vector<std::string> Ontology::ids_of(const std::vector<TermIndex>& indices) const {
  std::vector<std::string> ids;
  ids.reserve(indices.size());
  for (const TermIndex index : indices) ids.push_back(term(index).id);
  return ids;
}

std::vector<std::string> Ontology::parents(std::string_view id) const { return ids_of(parent_indices(index_of(id))); }

std::vector<std::string> Ontology::children(std::string_view id) const { return ids_of(child_indices(index_of(id))); }

std::vector<std::string> Ontology::ancestors(std::string_view id, bool include_self) const {
  const TermIndex index = index_of(id);
  std::vector<TermIndex> closure = ancestor_indices(index);
  if (include_self) closure.insert(std::upper_bound(closure.begin(), closure.end(), index), index);
  return ids_of(closure);
}

std::vector<std::string> Ontology::descendants(std::string_view id, bool include_self) const {
  const TermIndex index = index_of(id);
  std::vector<TermIndex> closure = descendant_indices(index);
  if (include_self) closure.insert(std::upper_bound(closure.begin(), closure.end(), index), index);
  return ids_of(closure);
}

bool Ontology::is_ancestor(std::string_view ancestor, std::string_view id) const {
  return is_ancestor(index_of(ancestor), index_of(id));
}

std::vector<std::string> Ontology::lowest_common_ancestors(std::string_view a, std::string_view b) const {
  return ids_of(lowest_common_ancestors(index_of(a), index_of(b)));
}

std::optional<std::int32_t> Ontology::upward_lca_distance(std::string_view prediction,
                                                          std::string_view truth) const {
  return upward_lca_distance(index_of(prediction), index_of(truth));
}

TermRelation Ontology::classify_relation(std::string_view prediction, std::string_view truth) const {
  return classify_relation(index_of(prediction), index_of(truth));
}

std::string ontology_in_folder(const std::filesystem::path& folder) {
  std::error_code error;
  std::string newest;  // CL-ontology-<version>.json: versions are dates (v2026-03-26), so the largest name is the newest
  for (std::filesystem::directory_iterator entry(folder, error), end; !error && entry != end; entry.increment(error)) {
    const std::string name = entry->path().filename().string();
    if (name.rfind("CL-ontology-", 0) == 0 && entry->path().extension() == ".json" && entry->is_regular_file(error) &&
        (newest.empty() || name > std::filesystem::path(newest).filename().string())) {
      newest = entry->path().string();
    }
  }
  if (!newest.empty()) return newest;
  const std::filesystem::path obo = folder / "cl-basic.obo";
  return std::filesystem::is_regular_file(obo, error) ? obo.string() : std::string();
}

std::string default_ontology_path(const std::string& argument) {
  if (!argument.empty()) return argument;
  if (const char* from_environment = std::getenv("CELLTYPER_ONTOLOGY");
      from_environment != nullptr && *from_environment != '\0') {
    return from_environment;
  }
  // Installed by scripts/setup.sh beside the executable (build/share/celltyper/), which the
  // Python module (build/python/celltyper/_core*.so) finds too.
  for (const std::filesystem::path& folder : installed_share_folders()) {
    if (std::string installed = ontology_in_folder(folder); !installed.empty()) return installed;
  }
  return ontology_in_folder("../shared/data/cell-ontology");
}

}  // namespace celltyper
