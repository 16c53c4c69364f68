/// @file gene_names.hpp
/// Internal helpers shared by the gene table and the resolver: recognising Ensembl and Entrez
/// identifiers and ASCII case folding. Not part of the public API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace celltyper::genes_detail {

/// If `name` is an Ensembl gene id, `ENS[A-Z]*G<digits>` optionally followed by a version
/// (".12") or any "_..." / "." suffix (GENCODE "_PAR_Y"), the id without that suffix.
inline std::optional<std::string_view> ensembl_gene_core(std::string_view name) {
  if (name.size() < 5 || name.substr(0, 3) != "ENS") return std::nullopt;
  std::size_t position = 3;
  while (position < name.size() && name[position] >= 'A' && name[position] <= 'Z') ++position;
  if (position == 3 || name[position - 1] != 'G') return std::nullopt;
  const std::size_t digits_begin = position;
  while (position < name.size() && name[position] >= '0' && name[position] <= '9') ++position;
  if (position == digits_begin) return std::nullopt;
  if (position < name.size() && name[position] != '.' && name[position] != '_') return std::nullopt;
  return name.substr(0, position);
}

/// The letters of an Ensembl gene id before its digits ("ENSG", "ENSMUSG"); "" when not one.
inline std::string_view ensembl_prefix(std::string_view name) {
  const auto core = ensembl_gene_core(name);
  if (!core) return {};
  std::size_t position = 3;
  while (position < core->size() && (*core)[position] >= 'A' && (*core)[position] <= 'Z') ++position;
  return core->substr(0, position);
}

/// Whether `name` is a non-empty run of at most 18 decimal digits (an Entrez id candidate).
inline bool is_all_digits(std::string_view name) {
  if (name.empty() || name.size() > 18) return false;
  for (const char character : name) {
    if (character < '0' || character > '9') return false;
  }
  return true;
}

/// `name` with ASCII letters lower-cased.
inline std::string ascii_lower(std::string_view name) {
  std::string lower(name);
  for (char& character : lower) {
    if (character >= 'A' && character <= 'Z') character = static_cast<char>(character - 'A' + 'a');
  }
  return lower;
}

/// `name` with ASCII letters upper-cased.
inline std::string ascii_upper(std::string_view name) {
  std::string upper(name);
  for (char& character : upper) {
    if (character >= 'a' && character <= 'z') character = static_cast<char>(character - 'a' + 'A');
  }
  return upper;
}

/// Whether `name` is cased like a mouse (or rat) gene symbol: an upper-case first letter, at
/// least one lower-case letter and no other upper-case letter ("Cd3e", "Gm12345"). Human
/// open-reading-frame names ("C1orf112") are excluded.
inline bool is_mouse_cased(std::string_view name) {
  if (name.size() < 2 || name[0] < 'A' || name[0] > 'Z') return false;
  if (name.find("orf") != std::string_view::npos) return false;
  bool has_lower = false;
  for (std::size_t i = 1; i < name.size(); ++i) {
    if (name[i] >= 'A' && name[i] <= 'Z') return false;
    if (name[i] >= 'a' && name[i] <= 'z') has_lower = true;
  }
  return has_lower;
}

}  // namespace celltyper::genes_detail
