// Gene texts: building one document per gene, reading and writing texts files, summaries and
// enrichment texts keyed by gene id.
#include <celltyper/error.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/output_file.hpp>

#include "genes/file_text.hpp"
#include "genes/gene_names.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_set>

namespace celltyper {

namespace {

/// Lines of `text` without "\n" / "\r\n".
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    begin = end + 1;
  }
  return lines;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = line.find('\t', begin);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(begin));
      return fields;
    }
    fields.push_back(line.substr(begin, end - begin));
    begin = end + 1;
  }
}

/// `text` with tabs / CR / LF turned into spaces, runs of spaces collapsed, ends trimmed.
std::string clean_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (const char character : text) {
    const bool is_space = character == ' ' || character == '\t' || character == '\n' || character == '\r' ||
                          character == '\v' || character == '\f';
    if (is_space) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += character;
  }
  return out;
}

/// `sentence` ending in '.', '!' or '?' (a '.' appended otherwise).
std::string with_period(std::string sentence) {
  if (!sentence.empty() && sentence.back() != '.' && sentence.back() != '!' && sentence.back() != '?') sentence += '.';
  return sentence;
}

std::optional<std::int64_t> parse_int64(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

/// Content hash of extra texts: sorted by Entrez id.
std::string extra_texts_hash(const std::unordered_map<std::int64_t, std::string>& texts) {
  std::vector<std::int64_t> ids;
  ids.reserve(texts.size());
  for (const auto& [id, text] : texts) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ContentHasher hasher;
  for (const std::int64_t id : ids) hasher.integer(id).field(texts.at(id));
  return hasher.hex();
}

void add_extra_text(GeneExtraTexts& extra, const GeneTable& table, std::string_view id, std::string_view raw_text) {
  const std::string text = clean_text(raw_text);
  if (text.empty()) return;
  const std::int32_t gene = resolve_gene_name(table, id);
  if (gene == kNoGene) {
    ++extra.n_unresolved;
    if (extra.unresolved_examples.size() < 10) extra.unresolved_examples.emplace_back(id);
    return;
  }
  std::string& slot = extra.texts[table.gene(gene).entrez_id];
  if (!slot.empty()) slot += ' ';
  slot += text;
}

nlohmann::json extra_provenance(const GeneExtraTexts& extra) {
  return {{"source", extra.source}, {"content_hash", extra.content_hash}, {"n_genes", extra.texts.size()},
          {"n_unresolved", extra.n_unresolved}};
}

}  // namespace

std::string ContentHasher::hex() const { return fmt::format("{:016x}", state_); }

std::int32_t resolve_gene_name(const GeneTable& table, std::string_view name) {
  if (name.empty()) return kNoGene;
  if (genes_detail::is_all_digits(name)) {
    if (const auto id = parse_int64(name)) {
      const std::int32_t gene = table.find_entrez(*id);
      if (gene != kNoGene) return gene;
    }
  }
  if (genes_detail::ensembl_gene_core(name)) {
    const std::int32_t gene = table.find_ensembl(name);
    if (gene != kNoGene) return gene;
  }
  std::int32_t gene = table.find_symbol(name);
  if (gene != kNoGene) return gene;
  gene = table.find_symbol_case_insensitive(name);
  if (gene != kNoGene) return gene;
  const AliasLookup alias = table.find_alias(name);
  return alias.found() ? alias.gene : kNoGene;
}

std::size_t GeneTexts::n_nonempty() const {
  return static_cast<std::size_t>(std::count_if(texts.begin(), texts.end(), [](const std::string& t) { return !t.empty(); }));
}

std::string gene_text_recipe_hash(const std::vector<std::int64_t>& entrez_ids, const std::vector<std::string>& texts) {
  ContentHasher hasher;
  hasher.field(kGeneTextRecipeVersion);
  for (std::size_t i = 0; i < texts.size(); ++i) hasher.integer(entrez_ids[i]).field(texts[i]);
  return hasher.hex();
}

namespace {

/// Extra texts from a TSV with a header (see `load_gene_summaries`); `what` names the file kind
/// in messages ("summaries file").
GeneExtraTexts load_extra_texts_tsv(const std::string& path, std::string_view content, const GeneTable& table,
                                    std::string_view what) {
  const auto lines = split_lines(content);
  if (lines.empty()) throw InputError(fmt::format("{} {} is empty", what, path));
  const auto header = split_tabs(lines[0]);
  if (header.size() < 2) {
    throw InputError(fmt::format("{} {}: line 1: expected a tab-separated header with an id and a text "
                                 "column, found '{}'",
                                 what, path, lines[0].substr(0, 80)));
  }
  const auto find_column = [&](std::initializer_list<std::string_view> names) -> std::size_t {
    for (const auto name : names) {
      const auto position = std::find(header.begin(), header.end(), name);
      if (position != header.end()) return static_cast<std::size_t>(position - header.begin());
    }
    return header.size();
  };
  std::size_t id_column = find_column({"entrez_id", "symbol", "gene", "gene_id", "id"});
  if (id_column == header.size()) id_column = 0;
  std::size_t text_column = find_column({"summary", "refseq_summary", "text"});
  if (text_column == header.size()) text_column = header.size() - 1;
  if (text_column == id_column) {
    throw InputError(fmt::format("{} {}: line 1: cannot tell the id column from the text column", what, path));
  }
  GeneExtraTexts extra;
  extra.source = path;
  for (std::size_t line_number = 1; line_number < lines.size(); ++line_number) {
    if (lines[line_number].empty()) continue;
    const auto fields = split_tabs(lines[line_number]);
    if (fields.size() != header.size()) {
      throw InputError(fmt::format("{} {}: line {} has {} tab-separated fields, expected {} as in the header",
                                   what, path, line_number + 1, fields.size(), header.size()));
    }
    add_extra_text(extra, table, fields[id_column], fields[text_column]);
  }
  extra.content_hash = extra_texts_hash(extra.texts);
  return extra;
}

}  // namespace

GeneExtraTexts load_gene_summaries(const std::string& path, const GeneTable& table) {
  return load_extra_texts_tsv(path, read_whole_file(path, "summaries file"), table, "summaries file");
}

GeneExtraTexts load_gene_enrichment(const std::string& path, const GeneTable& table) {
  const std::string content = read_whole_file(path, "enrichment file");
  const std::size_t first = content.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw InputError(fmt::format("enrichment file {} is empty", path));
  if (content[first] != '{') return load_extra_texts_tsv(path, content, table, "enrichment file");
  const auto lines = split_lines(content);
  GeneExtraTexts extra;
  extra.source = path;
  for (std::size_t line_number = 0; line_number < lines.size(); ++line_number) {
    const std::string_view line = lines[line_number];
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      throw InputError(fmt::format("enrichment file {}: line {}: not valid JSON ({})", path, line_number + 1, error.what()));
    }
    if (!object.is_object()) {
      throw InputError(fmt::format("enrichment file {}: line {}: expected a JSON object", path, line_number + 1));
    }
    const nlohmann::json* text = nullptr;
    for (const char* key : {"text", "enrichment"}) {
      if (object.contains(key) && object[key].is_string()) text = &object[key];
    }
    if (text == nullptr) continue;  // a header line
    std::string id;
    for (const char* key : {"id", "entrez_id", "symbol"}) {
      if (!object.contains(key)) continue;
      const auto& value = object[key];
      if (value.is_string()) id = value.get<std::string>();
      else if (value.is_number_integer()) id = std::to_string(value.get<std::int64_t>());
      if (!id.empty()) break;
    }
    if (id.empty()) {
      throw InputError(fmt::format("enrichment file {}: line {}: a text without an 'id', 'entrez_id' or 'symbol'", path,
                                   line_number + 1));
    }
    add_extra_text(extra, table, id, text->get<std::string>());
  }
  extra.content_hash = extra_texts_hash(extra.texts);
  return extra;
}

namespace {

constexpr std::array<std::string_view, kGeneTextSectionCount> kSectionNames{"name", "type",  "aliases", "summary",
                                                                         "bp",   "mf",    "cc",      "enrichment"};

}  // namespace

GeneTextSectionRepeats parse_gene_text_sections(std::string_view spec) {
  GeneTextSectionRepeats repeats{};
  const auto bad = [&spec](std::string_view item, std::string_view why) {
    return InputError(fmt::format("gene text sections '{}': {} '{}' (sections: name, type, aliases, summary, bp, mf, cc, go, enrichment, "
                                  "default; each may end in :N with N in 0..9, the times it is written)",
                                  spec, why, item));
  };
  bool any = false;
  std::size_t begin = 0;
  while (begin <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', begin), spec.size());
    std::string_view item = spec.substr(begin, comma - begin);
    begin = comma + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) {
      if (comma == spec.size() && any) break;
      throw bad(item, "empty item");
    }
    std::string_view name = item;
    std::uint8_t times = 1;
    if (const std::size_t colon = item.find(':'); colon != std::string_view::npos) {
      name = item.substr(0, colon);
      const std::string_view count = item.substr(colon + 1);
      if (count.size() != 1 || count[0] < '0' || count[0] > '9') throw bad(item, "the count must be one digit 0..9 in");
      times = static_cast<std::uint8_t>(count[0] - '0');
    }
    if (name == "default") {
      if (times != 1) throw bad(item, "no count allowed on");
      repeats = kDefaultGeneTextSections;
    } else if (name == "go") {
      for (const GeneTextSection aspect : kGoTextSections) repeats[static_cast<std::size_t>(aspect)] = times;
    } else {
      const auto found = std::find(kSectionNames.begin(), kSectionNames.end(), name);
      if (found == kSectionNames.end()) throw bad(item, "unknown section");
      repeats[static_cast<std::size_t>(found - kSectionNames.begin())] = times;
    }
    any = true;
    if (comma == spec.size()) break;
  }
  return repeats;
}

std::string format_gene_text_sections(const GeneTextSectionRepeats& repeats) {
  std::string out;
  for (std::size_t i = 0; i < kGeneTextSectionCount; ++i) {
    if (repeats[i] == 0) continue;
    if (!out.empty()) out += ',';
    out += kSectionNames[i];
    if (repeats[i] > 1) out += fmt::format(":{}", repeats[i]);
  }
  return out;
}

GeneTexts build_gene_texts(const GeneTextSources& sources, const GeneTextOptions& options) {
  if (sources.table == nullptr || sources.table->empty()) throw InputError("gene texts: the gene table is empty");
  const GeneTable& table = *sources.table;
  GeneTexts out;
  out.entrez_ids.reserve(table.size());
  out.symbols.reserve(table.size());
  out.texts.reserve(table.size());
  static constexpr std::array<std::string_view, 3> kAspectTitles{"Biological process", "Molecular function",
                                                                 "Cellular component"};
  std::size_t n_summary = 0;
  std::size_t n_go = 0;
  std::size_t n_enrichment = 0;
  std::size_t n_empty = 0;
  // Appends `section_text` (already starting with its space) as often as the recipe says.
  const auto append = [](std::string& text, std::string_view section_text, std::uint8_t n) {
    for (std::uint8_t i = 0; i < n; ++i) text += section_text;
  };
  for (const Gene& gene : table.genes()) {
    std::string text = clean_text(gene.symbol);
    const std::string name = clean_text(gene.name);
    if (options.repeats(GeneTextSection::kName) > 0 && !name.empty()) {
      text += ": " + name;
      text = with_period(std::move(text));
      append(text, " " + with_period(name), static_cast<std::uint8_t>(options.repeats(GeneTextSection::kName) - 1));
    } else {
      text = with_period(std::move(text));
    }
    if (!gene.gene_type.empty()) {
      append(text, " Gene type: " + with_period(clean_text(gene.gene_type)), options.repeats(GeneTextSection::kGeneType));
    }
    if (options.repeats(GeneTextSection::kAliases) > 0 && !gene.aliases.empty()) {
      std::string aliases = " Also known as: ";
      for (std::size_t i = 0; i < gene.aliases.size(); ++i) {
        if (i > 0) aliases += "; ";
        aliases += clean_text(gene.aliases[i]);
      }
      append(text, with_period(std::move(aliases)), options.repeats(GeneTextSection::kAliases));
    }
    bool annotated = false;
    if (options.repeats(GeneTextSection::kSummary) > 0) {
      std::string summary;
      if (sources.summaries != nullptr) {
        const auto found = sources.summaries->texts.find(gene.entrez_id);
        if (found != sources.summaries->texts.end()) summary = found->second;
      }
      if (summary.empty()) summary = clean_text(gene.summary);
      if (!summary.empty()) {
        append(text, " Summary: " + summary, options.repeats(GeneTextSection::kSummary));
        annotated = true;
        ++n_summary;
      }
    }
    if (sources.go != nullptr) {
      const auto found = sources.go->genes.find(gene.entrez_id);
      if (found != sources.go->genes.end()) {
        bool any = false;
        for (std::size_t aspect = 0; aspect < 3; ++aspect) {
          const auto& names = found->second[aspect];
          const std::uint8_t n_times = options.repeats(kGoTextSections[aspect]);
          if (names.empty() || n_times == 0) continue;
          const std::size_t n = options.max_go_terms_per_aspect == 0 ? names.size()
                                                                     : std::min(names.size(), options.max_go_terms_per_aspect);
          std::string section = fmt::format(" {}: ", kAspectTitles[aspect]);
          for (std::size_t i = 0; i < n; ++i) {
            if (i > 0) section += "; ";
            section += names[i];
          }
          section += '.';
          append(text, section, n_times);
          any = true;
        }
        if (any) {
          annotated = true;
          ++n_go;
        }
      }
    }
    if (sources.enrichment != nullptr && options.repeats(GeneTextSection::kEnrichment) > 0) {
      const auto found = sources.enrichment->texts.find(gene.entrez_id);
      if (found != sources.enrichment->texts.end() && !found->second.empty()) {
        append(text, " Enrichment: " + found->second, options.repeats(GeneTextSection::kEnrichment));
        annotated = true;
        ++n_enrichment;
      }
    }
    if (options.require_annotation && !annotated) text.clear();
    if (text.empty()) ++n_empty;
    out.entrez_ids.push_back(gene.entrez_id);
    out.symbols.push_back(gene.symbol);
    out.texts.push_back(std::move(text));
  }
  out.recipe_hash = gene_text_recipe_hash(out.entrez_ids, out.texts);
  nlohmann::json& provenance = out.provenance;
  provenance["recipe"] = kGeneTextRecipeVersion;
  provenance["recipe_hash"] = out.recipe_hash;
  provenance["gene_table"] = {{"source", table.source()},
                              {"content_hash", table.content_hash_hex()},
                              {"species", table.species()},
                              {"n_genes", table.size()}};
  if (sources.go != nullptr) {
    provenance["go"] = {{"source", sources.go->source},
                        {"content_hash", sources.go->content_hash},
                        {"n_links", sources.go->n_links},
                        {"n_genes", sources.go->genes.size()}};
  }
  if (sources.summaries != nullptr) provenance["summaries"] = extra_provenance(*sources.summaries);
  if (sources.enrichment != nullptr) provenance["enrichment"] = extra_provenance(*sources.enrichment);
  provenance["options"] = {{"sections", format_gene_text_sections(options.section_repeats)},
                           {"max_go_terms_per_aspect", options.max_go_terms_per_aspect},
                           {"require_annotation", options.require_annotation}};
  provenance["counts"] = {{"n_genes", out.size()},
                          {"n_nonempty", out.size() - n_empty},
                          {"n_with_summary", n_summary},
                          {"n_with_go", n_go},
                          {"n_with_enrichment", n_enrichment}};
  return out;
}

void write_gene_texts(const GeneTexts& texts, const std::string& path) {
  const std::string extension = std::filesystem::path(path).extension().string();
  const bool jsonl = extension == ".jsonl" || extension == ".json";
  std::string content;
  std::size_t total = 0;
  for (const auto& text : texts.texts) total += text.size() + 32;
  content.reserve(total + 4096);
  if (jsonl) {
    nlohmann::json header = {{"celltyper_gene_texts", 1},
                             {"recipe", kGeneTextRecipeVersion},
                             {"recipe_hash", texts.recipe_hash},
                             {"provenance", texts.provenance}};
    content += header.dump() + '\n';
    for (std::size_t i = 0; i < texts.size(); ++i) {
      nlohmann::json line = {{"entrez_id", texts.entrez_ids[i]}, {"symbol", texts.symbols[i]}, {"text", texts.texts[i]}};
      content += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    }
  } else {
    content += fmt::format("#celltyper_gene_texts\trecipe={}\trecipe_hash={}\tprovenance={}\n", kGeneTextRecipeVersion,
                           texts.recipe_hash, texts.provenance.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    content += "entrez_id\tsymbol\ttext\n";
    for (std::size_t i = 0; i < texts.size(); ++i) {
      // Texts built here never hold tabs or newlines; texts read from elsewhere are cleaned.
      content += fmt::format("{}\t{}\t{}\n", texts.entrez_ids[i], clean_text(texts.symbols[i]), clean_text(texts.texts[i]));
    }
  }
  write_output_file(path, content);
}

GeneTexts read_gene_texts(const std::string& path, const GeneTable* table) {
  const std::string content = read_whole_file(path, "gene texts file");
  const auto lines = split_lines(content);
  GeneTexts out;
  std::string stated_hash;
  std::unordered_set<std::int64_t> seen;
  const auto add = [&](std::int64_t entrez_id, std::string symbol, std::string text, std::size_t line_number) {
    if (!seen.insert(entrez_id).second) {
      throw InputError(fmt::format("gene texts file {}: line {}: Entrez id {} appears twice", path, line_number, entrez_id));
    }
    out.entrez_ids.push_back(entrez_id);
    out.symbols.push_back(std::move(symbol));
    out.texts.push_back(clean_text(text));
  };
  std::size_t first = 0;
  while (first < lines.size() && lines[first].empty()) ++first;
  if (first == lines.size()) throw InputError(fmt::format("gene texts file {} is empty", path));
  if (lines[first].front() == '{') {
    for (std::size_t i = first; i < lines.size(); ++i) {
      if (lines[i].find_first_not_of(" \t") == std::string_view::npos) continue;
      nlohmann::json object;
      try {
        object = nlohmann::json::parse(lines[i]);
      } catch (const nlohmann::json::exception& error) {
        throw InputError(fmt::format("gene texts file {}: line {}: not valid JSON ({})", path, i + 1, error.what()));
      }
      if (!object.is_object()) throw InputError(fmt::format("gene texts file {}: line {}: expected a JSON object", path, i + 1));
      if (object.contains("celltyper_gene_texts")) {
        stated_hash = object.value("recipe_hash", "");
        if (object.contains("provenance") && object["provenance"].is_object()) out.provenance = object["provenance"];
        continue;
      }
      if (!object.contains("text") || !object["text"].is_string()) {
        throw InputError(fmt::format("gene texts file {}: line {}: no string 'text'", path, i + 1));
      }
      std::int64_t entrez_id = 0;
      std::string symbol = object.contains("symbol") && object["symbol"].is_string() ? object["symbol"].get<std::string>() : "";
      if (object.contains("entrez_id") && object["entrez_id"].is_number_integer()) {
        entrez_id = object["entrez_id"].get<std::int64_t>();
      } else if (object.contains("entrez_id") && object["entrez_id"].is_string() &&
                 parse_int64(object["entrez_id"].get<std::string>())) {
        entrez_id = *parse_int64(object["entrez_id"].get<std::string>());
      } else if (table != nullptr && !symbol.empty() && resolve_gene_name(*table, symbol) != kNoGene) {
        entrez_id = table->gene(resolve_gene_name(*table, symbol)).entrez_id;
      } else {
        throw InputError(fmt::format("gene texts file {}: line {}: no integer 'entrez_id'{}", path, i + 1,
                                     table != nullptr ? " and no known 'symbol'" : ""));
      }
      add(entrez_id, std::move(symbol), object["text"].get<std::string>(), i + 1);
    }
  } else {
    std::size_t header_line = first;
    if (lines[first].starts_with("#celltyper_gene_texts")) {
      for (const auto field : split_tabs(lines[first])) {
        if (field.starts_with("recipe_hash=")) stated_hash = std::string(field.substr(12));
        if (field.starts_with("provenance=")) {
          try {
            out.provenance = nlohmann::json::parse(field.substr(11));
          } catch (const nlohmann::json::exception&) {
            throw InputError(fmt::format("gene texts file {}: line {}: the provenance is not valid JSON", path, first + 1));
          }
        }
      }
      header_line = first + 1;
      if (header_line >= lines.size()) throw InputError(fmt::format("gene texts file {}: no header line", path));
    }
    const auto header = split_tabs(lines[header_line]);
    const auto column = [&](std::string_view name) {
      const auto position = std::find(header.begin(), header.end(), name);
      return position == header.end() ? header.size() : static_cast<std::size_t>(position - header.begin());
    };
    const std::size_t entrez_column = column("entrez_id");
    const std::size_t symbol_column = column("symbol");
    const std::size_t text_column = column("text");
    if (text_column == header.size() || (entrez_column == header.size() && symbol_column == header.size())) {
      throw InputError(fmt::format("gene texts file {}: line {}: the header must name 'text' and 'entrez_id' (or 'symbol'), "
                                   "found '{}'",
                                   path, header_line + 1, lines[header_line].substr(0, 120)));
    }
    if (entrez_column == header.size() && table == nullptr) {
      throw InputError(fmt::format("gene texts file {}: no 'entrez_id' column; a gene table is needed to resolve symbols", path));
    }
    for (std::size_t i = header_line + 1; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      const auto fields = split_tabs(lines[i]);
      if (fields.size() != header.size()) {
        throw InputError(fmt::format("gene texts file {}: line {} has {} tab-separated fields, expected {}", path, i + 1,
                                     fields.size(), header.size()));
      }
      std::string symbol = symbol_column < fields.size() ? std::string(fields[symbol_column]) : "";
      std::int64_t entrez_id = 0;
      if (entrez_column < fields.size()) {
        const auto parsed = parse_int64(fields[entrez_column]);
        if (!parsed || *parsed <= 0) {
          throw InputError(fmt::format("gene texts file {}: line {}, column entrez_id: expected a positive integer, found '{}'",
                                       path, i + 1, fields[entrez_column]));
        }
        entrez_id = *parsed;
      } else {
        const std::int32_t gene = resolve_gene_name(*table, symbol);
        if (gene == kNoGene) throw InputError(fmt::format("gene texts file {}: line {}: unknown gene '{}'", path, i + 1, symbol));
        entrez_id = table->gene(gene).entrez_id;
      }
      add(entrez_id, std::move(symbol), std::string(fields[text_column]), i + 1);
    }
  }
  if (out.texts.empty()) throw InputError(fmt::format("gene texts file {} holds no genes", path));
  out.recipe_hash = gene_text_recipe_hash(out.entrez_ids, out.texts);
  if (!out.provenance.is_object()) out.provenance = nlohmann::json::object();
  out.provenance["source_file"] = path;
  if (!stated_hash.empty() && stated_hash != out.recipe_hash) {
    out.provenance["recipe_hash_in_file"] = stated_hash;
    out.provenance["edited"] = true;
  }
  out.provenance["recipe_hash"] = out.recipe_hash;
  return out;
}

void write_gene_enrichment(const std::map<std::int64_t, std::string>& texts, const GeneTable& table, const std::string& path,
                           const nlohmann::json& header) {
  const std::string extension = std::filesystem::path(path).extension().string();
  const bool jsonl = extension == ".jsonl" || extension == ".json";
  std::string content;
  const auto symbol_of = [&](std::int64_t entrez_id) {
    const std::int32_t gene = table.find_entrez(entrez_id);
    return gene == kNoGene ? std::string() : table.gene(gene).symbol;
  };
  if (jsonl) {
    nlohmann::json first = {{"celltyper_gene_enrichment", 1}};
    if (header.is_object()) first.update(header);
    content += first.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    for (const auto& [entrez_id, text] : texts) {
      const nlohmann::json line = {{"entrez_id", entrez_id}, {"symbol", symbol_of(entrez_id)}, {"text", text}};
      content += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    }
  } else {
    content += "entrez_id\tsymbol\ttext\n";
    for (const auto& [entrez_id, text] : texts)
      content += fmt::format("{}\t{}\t{}\n", entrez_id, clean_text(symbol_of(entrez_id)), clean_text(text));
  }
  write_output_file(path, content);
}

std::vector<std::int32_t> read_gene_subset(const std::string& path, const GeneTable& table) {
  const std::string content = read_whole_file(path, "gene list");
  std::vector<std::int32_t> genes;
  detail::Examples unknown(5);
  const auto lines = split_lines(content);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string name = clean_text(split_tabs(lines[i]).front());
    if (name.empty() || name.front() == '#') continue;
    const std::int32_t gene = resolve_gene_name(table, name);
    if (gene != kNoGene) {
      genes.push_back(gene);
      continue;
    }
    if (i == 0 && (name == "entrez_id" || name == "symbol" || name == "gene" || name == "gene_id" || name == "id")) continue;
    unknown.add_with([&] { return fmt::format("'{}' (line {})", name, i + 1); });
  }
  if (!unknown.empty()) {
    throw InputError(fmt::format("gene list {}: {} gene id(s) not in the gene table {}: {}", path, unknown.count(), table.source(), unknown.str()));
  }
  if (genes.empty()) throw InputError(fmt::format("gene list {} names no gene", path));
  std::sort(genes.begin(), genes.end());
  genes.erase(std::unique(genes.begin(), genes.end()), genes.end());
  return genes;
}

GeneTexts select_gene_texts(const GeneTexts& texts, const std::vector<std::int64_t>& entrez_ids) {
  const std::unordered_set<std::int64_t> wanted(entrez_ids.begin(), entrez_ids.end());
  GeneTexts out;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (!wanted.contains(texts.entrez_ids[i])) continue;
    out.entrez_ids.push_back(texts.entrez_ids[i]);
    out.symbols.push_back(texts.symbols[i]);
    out.texts.push_back(texts.texts[i]);
  }
  out.recipe_hash = gene_text_recipe_hash(out.entrez_ids, out.texts);
  out.provenance = texts.provenance;
  out.provenance["selected_from"] = {{"recipe_hash", texts.recipe_hash}, {"n_genes", texts.size()}};
  out.provenance["recipe_hash"] = out.recipe_hash;
  std::size_t n_nonempty = out.n_nonempty();
  if (out.provenance.contains("counts") && out.provenance["counts"].is_object()) {
    out.provenance["counts"]["n_genes"] = out.size();
    out.provenance["counts"]["n_nonempty"] = n_nonempty;
  }
  return out;
}

}  // namespace celltyper
