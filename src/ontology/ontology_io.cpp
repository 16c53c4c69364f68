/// @file ontology_io.cpp
/// Readers for the two Cell Ontology formats: OBO 1.2 and the CELLxGENE ontology-guide JSON.

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "celltyper/error.hpp"
#include "celltyper/ontology.hpp"

namespace celltyper {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

/// An unquoted OBO value without its trailing modifiers (`{...}`) and comment (`! ...`).
std::string_view unquoted_value(std::string_view value) {
  if (const auto comment = value.find(" !"); comment != std::string_view::npos) value = value.substr(0, comment);
  value = trim(value);
  if (!value.empty() && value.back() == '}') {
    if (const auto modifier = value.rfind(" {"); modifier != std::string_view::npos) value = value.substr(0, modifier);
  }
  return trim(value);
}

/// The first whitespace-delimited token of an unquoted value (ids, booleans).
std::string first_token(std::string_view value) {
  value = unquoted_value(value);
  const auto end = value.find_first_of(" \t");
  return std::string(value.substr(0, end));
}

/// Read a quoted OBO string at the start of `value` (OBO escapes: \" \\ \n \t); `rest` receives
/// what follows the closing quote. Throws InputError naming `where` when unterminated.
std::string quoted_value(std::string_view value, std::string_view& rest, const std::string& where) {
  value = trim(value);
  if (value.empty() || value.front() != '"') throw InputError(where + ": expected a quoted string");
  std::string text;
  for (std::size_t i = 1; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && i + 1 < value.size()) {
      const char next = value[++i];
      text += next == 'n' ? '\n' : next == 't' ? '\t' : next;
    } else if (c == '"') {
      rest = value.substr(i + 1);
      return text;
    } else {
      text += c;
    }
  }
  throw InputError(where + ": unterminated quoted string");
}

SynonymScope parse_scope(std::string_view rest) {
  rest = trim(rest);
  const auto word = rest.substr(0, rest.find_first_of(" \t["));
  if (word == "EXACT") return SynonymScope::kExact;
  if (word == "BROAD") return SynonymScope::kBroad;
  if (word == "NARROW") return SynonymScope::kNarrow;
  return SynonymScope::kRelated;  // OBO's default scope
}

}  // namespace

Ontology parse_obo(std::istream& input, const std::string& source) {
  std::vector<OntologyTerm> terms;
  std::string version;
  bool in_term = false;
  bool saw_stanza = false;
  std::size_t term_line = 0;
  std::string line;
  std::size_t line_number = 0;

  const auto close_term = [&]() {
    if (in_term && terms.back().id.empty()) {
      throw InputError(source + " line " + std::to_string(term_line) + ": [Term] stanza without an id");
    }
  };

  while (std::getline(input, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string_view view = trim(line);
    if (view.empty() || view.front() == '!') continue;
    if (view.front() == '[') {
      close_term();
      saw_stanza = true;
      in_term = view == "[Term]";
      if (in_term) {
        terms.emplace_back();
        term_line = line_number;
      }
      continue;
    }
    const auto colon = view.find(':');
    if (colon == std::string_view::npos) {
      throw InputError(source + " line " + std::to_string(line_number) + ": expected 'tag: value', found '" +
                       std::string(view) + "'");
    }
    const std::string_view tag = view.substr(0, colon);
    const std::string_view value = trim(view.substr(colon + 1));
    if (!saw_stanza) {
      if (tag == "data-version") version = std::string(value);
      continue;
    }
    if (!in_term) continue;
    OntologyTerm& term = terms.back();
    const std::string where = source + " line " + std::to_string(line_number);
    if (tag == "id") {
      if (!term.id.empty()) throw InputError(where + ": second id in the [Term] stanza of " + term.id);
      term.id = first_token(value);
      if (term.id.empty()) throw InputError(where + ": empty id");
    } else if (tag == "name") {
      if (term.label.empty()) term.label = std::string(unquoted_value(value));
    } else if (tag == "def") {
      std::string_view rest;
      term.definition = quoted_value(value, rest, where);
    } else if (tag == "synonym") {
      std::string_view rest;
      std::string text = quoted_value(value, rest, where);
      term.synonyms.push_back({std::move(text), parse_scope(rest)});
    } else if (tag == "is_a") {
      // Keep every parent here; the Ontology constructor drops those outside CL.
      std::string parent = first_token(value);
      if (parent.empty()) throw InputError(where + ": empty is_a");
      term.parents.push_back(std::move(parent));
    } else if (tag == "is_obsolete") {
      term.deprecated = first_token(value) == "true";
    } else if (tag == "replaced_by") {
      if (term.replaced_by.empty()) term.replaced_by = first_token(value);
    }
  }
  if (input.bad()) throw IoError("cannot read " + source);
  close_term();
  if (terms.empty()) throw InputError(source + " has no [Term] stanza; is it an OBO file?");
  return Ontology(std::move(terms), source, version);
}

Ontology parse_cellxgene_json(std::string_view text, const std::string& source, const std::string& version) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& error) {  // parse errors and number overflow (out_of_range)
    throw InputError(source + " is not valid JSON: " + error.what());
  }
  if (!document.is_object() || document.empty()) {
    throw InputError(source + ": expected a JSON object of Cell Ontology terms keyed by id");
  }
  std::vector<OntologyTerm> terms;
  terms.reserve(document.size());
  for (const auto& [id, entry] : document.items()) {
    const std::string where = source + ": term " + id;
    if (!entry.is_object()) throw InputError(where + " is not a JSON object");
    OntologyTerm term;
    term.id = id;
    const auto label = entry.find("label");
    if (label == entry.end() || !label->is_string()) throw InputError(where + " has no string 'label'");
    term.label = label->get<std::string>();
    if (const auto description = entry.find("description"); description != entry.end() && description->is_string()) {
      term.definition = description->get<std::string>();
    }
    if (const auto synonyms = entry.find("synonyms"); synonyms != entry.end() && !synonyms->is_null()) {
      if (!synonyms->is_array()) throw InputError(where + ": 'synonyms' is not a list");
      for (const auto& synonym : *synonyms) {
        if (!synonym.is_string()) throw InputError(where + ": a synonym is not a string");
        term.synonyms.push_back({synonym.get<std::string>(), SynonymScope::kExact});
      }
    }
    if (const auto deprecated = entry.find("deprecated"); deprecated != entry.end()) {
      if (!deprecated->is_boolean()) throw InputError(where + ": 'deprecated' is not true/false");
      term.deprecated = deprecated->get<bool>();
    }
    if (const auto replaced_by = entry.find("replaced_by"); replaced_by != entry.end() && replaced_by->is_string()) {
      term.replaced_by = replaced_by->get<std::string>();
    }
    if (const auto ancestors = entry.find("ancestors"); ancestors != entry.end() && !ancestors->is_null()) {
      if (!ancestors->is_object()) throw InputError(where + ": 'ancestors' is not an object of id: distance");
      for (const auto& [ancestor, distance] : ancestors->items()) {
        if (!distance.is_number_integer()) {
          throw InputError(where + ": distance of ancestor " + ancestor + " is not an integer");
        }
        if (distance.get<std::int64_t>() == 1) term.parents.push_back(ancestor);
      }
    }
    terms.push_back(std::move(term));
  }
  return Ontology(std::move(terms), source, version);
}

Ontology load_ontology(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw InputError("ontology file " + path.string() + " does not exist (or is not a file)");
  }
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension != ".obo" && extension != ".json") {
    throw InputError("ontology file " + path.string() + " has extension '" + extension +
                     "'; expected .obo (OBO 1.2) or .json (CELLxGENE ontology-guide export)");
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw InputError("cannot open ontology file " + path.string());
  if (extension == ".obo") return parse_obo(stream, path.string());
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  if (stream.bad()) throw IoError("cannot read ontology file " + path.string());
  // CELLxGENE names its exports CL-ontology-<version>.json.
  const std::string stem = path.stem().string();
  const std::string prefix = "CL-ontology-";
  const std::string version = stem.rfind(prefix, 0) == 0 ? stem.substr(prefix.size()) : "";
  return parse_cellxgene_json(buffer.str(), path.string(), version);
}

}  // namespace celltyper
