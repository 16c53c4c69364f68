// `extract`: embed the fragments of a selection and write one training h5ad.
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/extract.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/train.hpp>
#include "text_lists.hpp"

#include <fmt/format.h>

#include <array>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace celltyper {

SelectionFile read_selection(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot read the selection {}", path));
  SelectionFile selection;
  selection.path = path;
  try {
    selection.document = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, error.what()));
  }
  const nlohmann::json& document = selection.document;
  if (!document.is_object() || document.value("format", "") != "celltyper-selection") {
    throw InputError(fmt::format("{}: not a celltyper selection (format must be \"celltyper-selection\"; write one with `celltyper select`)", path));
  }
  if (!document.contains("fragments") || !document["fragments"].is_array()) throw InputError(fmt::format("{}: no \"fragments\" array", path));
  selection.label_column = document.value("label_column", "");
  std::size_t i = 0;
  for (const auto& entry : document["fragments"]) {
    FragmentRef fragment;
    try {
      fragment.path = entry.at("file").get<std::string>();
      fragment.row_start = entry.at("row_start").get<std::int64_t>();
      fragment.row_end = entry.at("row_end").get<std::int64_t>();
    } catch (const nlohmann::json::exception& error) {
      throw InputError(fmt::format("{}: fragments[{}]: {}", path, i, error.what()));
    }
    if (fragment.row_start < 0 || fragment.row_end < fragment.row_start) {
      throw InputError(fmt::format("{}: fragments[{}]: rows [{}, {}) are not a range", path, i, fragment.row_start, fragment.row_end));
    }
    selection.fragments.push_back(std::move(fragment));
    ++i;
  }
  if (selection.fragments.empty()) throw InputError(fmt::format("{}: the selection has no fragment", path));
  // Each cell once: overlapping fragments of a file (a hand-edited selection; `select` never
  // writes them) would extract cells twice, into both training and validation.
  std::map<std::string, std::vector<std::size_t>> by_file;  // a file (however its path is spelt) -> its non-empty fragments
  for (std::size_t k = 0; k < selection.fragments.size(); ++k) {
    const FragmentRef& fragment = selection.fragments[k];
    if (fragment.row_end == fragment.row_start) continue;
    std::string file = fragment.path;
    if (file.find("://") == std::string::npos) {
      std::error_code error;
      const auto canonical = std::filesystem::weakly_canonical(file, error);
      if (!error) file = canonical.string();
    }
    by_file[file].push_back(k);
  }
  for (auto& [file, positions] : by_file) {
    std::sort(positions.begin(), positions.end(), [&](std::size_t a, std::size_t b) {
      return selection.fragments[a].row_start < selection.fragments[b].row_start;
    });
    std::size_t reaching = positions.front();  // the fragment reaching furthest so far
    for (std::size_t k = 1; k < positions.size(); ++k) {
      const FragmentRef& before = selection.fragments[reaching];
      const FragmentRef& after = selection.fragments[positions[k]];
      if (after.row_start < before.row_end) {
        throw InputError(fmt::format("{}: fragments[{}] and fragments[{}] overlap (rows [{}, {}) and [{}, {}) of {}): their common cells "
                                     "would be extracted twice; list each row range once",
                                     path, std::min(reaching, positions[k]), std::max(reaching, positions[k]), before.row_start,
                                     before.row_end, after.row_start, after.row_end, file));
      }
      if (after.row_end > before.row_end) reaching = positions[k];
    }
  }
  return selection;
}

void ExtractedCells::append(ExtractedCells&& other) {
  if (other.n_cells() == 0 && other.file_info.empty() && other.skipped.empty()) return;
  if (dims == 0) dims = other.dims;
  if (other.dims != 0 && other.dims != dims) throw InputError(fmt::format("extract: parts with {} and {} dims", dims, other.dims));
  values.insert(values.end(), other.values.begin(), other.values.end());
  empty.insert(empty.end(), other.empty.begin(), other.empty.end());
  labels.insert(labels.end(), std::make_move_iterator(other.labels.begin()), std::make_move_iterator(other.labels.end()));
  files.insert(files.end(), std::make_move_iterator(other.files.begin()), std::make_move_iterator(other.files.end()));
  rows.insert(rows.end(), other.rows.begin(), other.rows.end());
  const std::size_t before = obs_names.size();
  obs_names.insert(obs_names.end(), std::make_move_iterator(other.obs_names.begin()), std::make_move_iterator(other.obs_names.end()));
  for (auto& [name, values] : kept_obs) values.resize(before);  // (a part without the column: none for its cells)
  for (auto& [name, values] : other.kept_obs) {
    auto& into = kept_obs[name];
    into.resize(before);
    into.insert(into.end(), std::make_move_iterator(values.begin()), std::make_move_iterator(values.end()));
  }
  for (auto& [name, values] : kept_obs) values.resize(obs_names.size());
  std::set<std::int64_t> merged(genes.begin(), genes.end());
  merged.insert(other.genes.begin(), other.genes.end());
  genes.assign(merged.begin(), merged.end());
  for (auto& [path, info] : other.file_info.items()) file_info[path] = info;
  warnings.insert(warnings.end(), other.warnings.begin(), other.warnings.end());
  for (auto& file : other.skipped) skipped.push_back(std::move(file));
  seconds += other.seconds;
}

// Wire format: u64 length of a CBOR header, the header (everything but the numbers), then the
// float32 values and the empty flags as raw bytes (native byte order: the ranks of one job).
std::string ExtractedCells::serialize() const {
  const nlohmann::json header = {{"dims", dims},       {"labels", labels},       {"files", files},     {"rows", rows},
                                 {"obs_names", obs_names}, {"kept_obs", kept_obs}, {"genes", genes},     {"file_info", file_info},
                                 {"warnings", warnings}, {"skipped", skipped}, {"seconds", seconds}, {"n_values", values.size()}};
  const std::vector<std::uint8_t> cbor = nlohmann::json::to_cbor(header);
  std::string bytes;
  const std::uint64_t header_size = cbor.size();
  bytes.resize(sizeof header_size + cbor.size() + values.size() * sizeof(float) + empty.size());
  char* out = bytes.data();
  std::memcpy(out, &header_size, sizeof header_size);
  out += sizeof header_size;
  std::memcpy(out, cbor.data(), cbor.size());
  out += cbor.size();
  std::memcpy(out, values.data(), values.size() * sizeof(float));
  out += values.size() * sizeof(float);
  std::memcpy(out, empty.data(), empty.size());
  return bytes;
}

ExtractedCells ExtractedCells::deserialize(const std::string& bytes) {
  std::uint64_t header_size = 0;
  if (bytes.size() < sizeof header_size) throw std::runtime_error("extract: truncated message");
  std::memcpy(&header_size, bytes.data(), sizeof header_size);
  const auto* begin = reinterpret_cast<const std::uint8_t*>(bytes.data()) + sizeof header_size;
  const nlohmann::json header = nlohmann::json::from_cbor(begin, begin + header_size);
  ExtractedCells cells;
  cells.dims = header.at("dims").get<int>();
  cells.labels = header.at("labels").get<std::vector<std::string>>();
  cells.files = header.at("files").get<std::vector<std::string>>();
  cells.rows = header.at("rows").get<std::vector<std::int64_t>>();
  cells.obs_names = header.at("obs_names").get<std::vector<std::string>>();
  cells.kept_obs = header.at("kept_obs").get<std::map<std::string, std::vector<std::string>>>();
  cells.genes = header.at("genes").get<std::vector<std::int64_t>>();
  cells.file_info = header.at("file_info");
  cells.warnings = header.at("warnings").get<std::vector<std::string>>();
  cells.skipped = header.at("skipped");
  cells.seconds = header.at("seconds").get<double>();
  const auto n_values = header.at("n_values").get<std::size_t>();
  const std::size_t n = cells.labels.size();
  if (bytes.size() != sizeof header_size + header_size + n_values * sizeof(float) + n) throw std::runtime_error("extract: message size mismatch");
  cells.values.resize(n_values);
  std::memcpy(cells.values.data(), begin + header_size, n_values * sizeof(float));
  cells.empty.resize(n);
  std::memcpy(cells.empty.data(), begin + header_size + n_values * sizeof(float), n);
  return cells;
}

namespace {

/// The columns extract writes itself: a kept obs column may not take their names.
constexpr std::array<std::string_view, 4> kOwnColumns{"source_file", "source_row", "source_obs_name", "celltyper_embedding_empty"};

/// ExtractOptions::keep_obs with "auto" expanded (the label's CL id column, donor_id, assay) and
/// "none" dropped, each once, the label column left out (it is written anyway).
std::vector<std::string> kept_obs_columns(const std::vector<std::string>& keep_obs, const std::string& label_column) {
  std::vector<std::string> names;
  const auto add = [&](const std::string& name) {
    if (name.empty() || name == "none" || name == label_column || std::find(names.begin(), names.end(), name) != names.end()) return;
    names.push_back(name);
  };
  for (const std::string& name : keep_obs) {
    if (name == ExtractOptions::kKeepObsAuto) {
      for (const std::string& automatic : {ontology_term_id_column(label_column), std::string("donor_id"), std::string("assay")}) add(automatic);
    } else {
      add(name);
    }
  }
  return names;
}

/// Embed the fragments [begin, end) of `selection` (one file's) into `cells`, with the obs
/// columns `keep` (kept_obs_columns of the options).
void extract_file(const SelectionFile& selection, std::size_t begin, std::size_t end, const std::string& label_column,
                  const std::vector<std::string>& keep, const GeneTable& table, const GeneVectorSource& source, const ExtractOptions& options,
                  ExtractedCells& cells) {
  const std::string& path = selection.fragments[begin].path;
  const auto dataset = open_dataset(path);
  // The label column and the kept ones this file has (and the index).
  const std::vector<std::string> present = dataset->obs_column_names();
  std::vector<std::string> wanted{label_column};
  std::vector<std::string> kept;     // kept columns this file has
  std::vector<std::string> lacking;  // columns asked for by name that it lacks
  std::vector<std::string> automatic;  // columns kept by "auto" that it has: read one by one, left out when unreadable
  for (const std::string& name : keep) {
    const bool auto_column = std::find(options.keep_obs.begin(), options.keep_obs.end(), name) == options.keep_obs.end();
    cells.kept_obs[name];  // (every part has every column: none for a file without it)
    if (std::find(present.begin(), present.end(), name) != present.end()) {
      (auto_column ? automatic : wanted).push_back(name);
    } else if (!auto_column) {
      lacking.push_back(name);
    }
  }
  const DataFrame obs = dataset->read_obs_columns(wanted);  // (a named column that cannot be read stops the file, as the label does)
  const Column& labels = obs.at(label_column, fmt::format("obs of {}", path));
  std::vector<const Column*> kept_columns;
  for (std::size_t w = 1; w < wanted.size(); ++w) {
    kept.push_back(wanted[w]);
    kept_columns.push_back(&obs.at(wanted[w], fmt::format("obs of {}", path)));
  }
  std::vector<DataFrame> automatic_obs;
  automatic_obs.reserve(automatic.size());  // (kept_columns point into it)
  for (const std::string& name : automatic) {
    try {
      automatic_obs.push_back(dataset->read_obs_columns({name}));
      kept.push_back(name);
      kept_columns.push_back(&automatic_obs.back().at(name, fmt::format("obs of {}", path)));
    } catch (const Error& error) {
      cells.warnings.push_back(fmt::format("{}: obs column '{}' cannot be read ({}): not kept", path, name, message_without(path, error.what())));
    }
  }
  EmbedOptions embed = options.embed;
  std::set<std::int64_t> genes;
  embed.rows.clear();
  const nlohmann::json listed = selection.document.value("fragments", nlohmann::json::array());
  for (std::size_t f = begin; f < end; ++f) {
    const FragmentRef& fragment = selection.fragments[f];
    if (fragment.row_end > dataset->n_obs()) {
      throw InputError(fmt::format("{}: fragment rows [{}, {}) exceed {}'s {} cells (the file changed since `select`?)", selection.path,
                                   fragment.row_start, fragment.row_end, path, dataset->n_obs()));
    }
    embed.rows.push_back({fragment.row_start, fragment.row_end});
    std::map<std::string, std::int64_t> found;  // per label spelling (select merges spellings), the labelled cells
    std::map<std::string, std::string> spelt;   // a spelling of each, for the message
    for (std::int64_t row = fragment.row_start; row < fragment.row_end; ++row) {
      const auto r = static_cast<std::size_t>(row);
      cells.labels.push_back(labels.is_missing(r) || is_unlabelled(labels.value_as_string(r)) ? std::string() : labels.value_as_string(r));
      if (!cells.labels.back().empty()) {
        const std::string key = label_spelling_key(cells.labels.back());
        ++found[key];
        spelt.emplace(key, cells.labels.back());
      }
      cells.files.push_back(path);
      cells.rows.push_back(row);
      cells.obs_names.push_back(r < obs.index.size() ? obs.index[r] : std::to_string(row));
      for (std::size_t c = 0; c < kept.size(); ++c) {
        const Column& column = *kept_columns[c];
        cells.kept_obs[kept[c]].push_back(column.is_missing(r) ? std::string() : column.value_as_string(r));
      }
    }
    // The rows must still hold the labels `select` counted there: a file rewritten with its cells
    // in another order (or relabelled) keeps its size but not the selection's balance.
    if (f < listed.size() && listed[f].contains("counts") && listed[f]["counts"].is_object()) {
      std::map<std::string, std::int64_t> expected;
      for (const auto& [label, count] : listed[f]["counts"].items()) {
        if (!count.is_number_integer()) continue;
        expected[label_spelling_key(label)] += count.get<std::int64_t>();
        spelt.emplace(label_spelling_key(label), label);
      }
      if (expected != found) {
        std::vector<std::string> changed;
        std::set<std::string> keys;
        for (const auto& [key, count] : expected) keys.insert(key);
        for (const auto& [key, count] : found) keys.insert(key);
        for (const auto& key : keys) {
          const std::int64_t was = expected.count(key) != 0 ? expected.at(key) : 0;
          const std::int64_t now = found.count(key) != 0 ? found.at(key) : 0;
          if (was != now) changed.push_back(fmt::format("'{}' {} -> {}", spelt.at(key), was, now));
        }
        throw InputError(fmt::format("{}: rows [{}, {}) of {} no longer hold the labels `select` counted there ({}): the file changed "
                                     "since `select`; run select again",
                                     selection.path, fragment.row_start, fragment.row_end, path, detail::some_of(changed, 4, ", ")));
      }
    }
  }
  MemorySink sink;
  const EmbedResult embedded = embed_dataset(*dataset, table, source, embed, sink);
  cells.dims = embedded.dims;
  cells.values.insert(cells.values.end(), sink.values.begin(), sink.values.end());
  cells.empty.insert(cells.empty.end(), sink.empty.begin(), sink.empty.end());
  for (std::size_t v = 0; v < embedded.genes.gene_index.size(); ++v) {
    const std::int32_t gene = embedded.genes.gene_index[v];
    if (gene == kNoGene) continue;
    const std::int64_t entrez = table.gene(gene).entrez_id;
    if (source.find(entrez) != nullptr) genes.insert(entrez);
  }
  // Per-file settings that do not depend on which fragments were embedded together.
  cells.file_info[path] = {{"n_cells", dataset->n_obs()},
                           {"matrix", embedded.matrix},
                           {"normalization", to_string(embedded.normalization)},
                           {"normalization_reason", embedded.normalization_reason},
                           {"gene_column", embedded.genes.column},
                           {"gene_id_type", to_string(embedded.genes.id_type)},
                           {"n_vars_with_vector", embedded.n_vars_with_vector}};
  if (!lacking.empty()) cells.file_info[path]["obs_columns_missing"] = lacking;
  for (const auto& warning : embedded.warnings) cells.warnings.push_back(message_about(path, warning));
  cells.genes.assign(genes.begin(), genes.end());
}

/// Record fragments [begin, end) (one file's) as left out under --skip-unreadable: a warning
/// counting their selected cells per label (the selection's "counts") and an entry of `skipped`.
void leave_out(const SelectionFile& selection, std::size_t begin, std::size_t end, const std::string& error, ExtractedCells& cells) {
  const std::string& path = selection.fragments[begin].path;
  std::int64_t n_cells = 0;
  std::map<std::string, std::int64_t> counts;
  const nlohmann::json listed = selection.document.value("fragments", nlohmann::json::array());
  for (std::size_t f = begin; f < end; ++f) {
    n_cells += selection.fragments[f].row_end - selection.fragments[f].row_start;
    const nlohmann::json fragment_counts = f < listed.size() ? listed[f].value("counts", nlohmann::json::object()) : nlohmann::json::object();
    for (const auto& [label, count] : fragment_counts.items()) {
      if (count.is_number_integer()) counts[label] += count.get<std::int64_t>();
    }
  }
  std::string by_label;
  for (const auto& [label, count] : counts) by_label += fmt::format("{}{} {}", by_label.empty() ? "" : ", ", label, count);
  const std::string reason = message_without(path, error);
  cells.warnings.push_back(fmt::format("{}: left out (--skip-unreadable): {}; its {} selected cells{} are not in the training matrix", path,
                                       reason, n_cells, by_label.empty() ? std::string() : fmt::format(" ({})", by_label)));
  cells.skipped.push_back({{"path", path}, {"error", error}, {"n_cells", n_cells}, {"counts", counts}});
}

}  // namespace

std::vector<std::string> missing_selection_files(const SelectionFile& selection) {
  std::vector<std::string> missing;
  std::set<std::string> checked;  // (each file once: its fragments follow each other)
  for (const FragmentRef& fragment : selection.fragments) {
    if (fragment.path.find("://") != std::string::npos || !checked.insert(fragment.path).second) continue;
    std::error_code error;
    if (!std::filesystem::exists(fragment.path, error) && !error) missing.push_back(fragment.path);  // (an error: not known missing)
  }
  return missing;
}

std::vector<std::string> kept_obs_warnings(const ExtractedCells& cells) {
  std::map<std::string, std::vector<std::string>> lacking;  // column -> files without it
  for (const auto& [path, info] : cells.file_info.items()) {
    for (const auto& name : info.value("obs_columns_missing", std::vector<std::string>{})) lacking[name].push_back(path);
  }
  std::vector<std::string> warnings;
  for (const auto& [name, paths] : lacking) {
    const bool none = paths.size() == cells.file_info.size();
    warnings.push_back(none ? fmt::format("--keep-obs '{}': no extracted file has that obs column; left out", name)
                            : fmt::format("--keep-obs '{}': {} of {} extracted files have no such obs column ({}): their cells have none",
                                          name, paths.size(), cells.file_info.size(), detail::some_of(paths, 3)));
  }
  return warnings;
}

ExtractedCells extract_fragments(const SelectionFile& selection, std::size_t first, std::size_t last, const GeneTable& table,
                                 const GeneVectorSource& source, const ExtractOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const std::string label_column = options.label_column.empty() ? selection.label_column : options.label_column;
  if (label_column.empty()) throw InputError(fmt::format("{}: no label column in the selection; pass --label", selection.path));
  const std::vector<std::string> keep = kept_obs_columns(options.keep_obs, label_column);
  for (const std::string& name : keep) {
    if (std::find(kOwnColumns.begin(), kOwnColumns.end(), name) != kOwnColumns.end()) {
      throw InputError(fmt::format("--keep-obs '{}': extract writes an obs column of that name itself (keep it under another name)", name));
    }
  }
  ExtractedCells cells;
  last = std::min(last, selection.fragments.size());
  const auto rows_of = [&selection](std::size_t begin, std::size_t end) {
    std::int64_t rows = 0;
    for (std::size_t f = begin; f < end; ++f) rows += selection.fragments[f].row_end - selection.fragments[f].row_start;
    return rows;
  };
  const std::int64_t total = rows_of(first, last);
  std::int64_t done_before = 0;  // cells of the files before this one
  for (std::size_t begin = first; begin < last;) {
    const std::string& path = selection.fragments[begin].path;
    std::size_t end = begin;
    while (end < last && selection.fragments[end].path == path) ++end;
    // (the file's cells gathered apart: a file that fails half-way leaves nothing behind)
    ExtractedCells part;
    ExtractOptions file_options = options;
    if (options.progress) {
      file_options.embed.progress = [&options, &done_before, total](std::int64_t done, std::int64_t) { options.progress(done_before + done, total); };
    }
    try {
      extract_file(selection, begin, end, label_column, keep, table, source, file_options, part);
    } catch (const Cancelled&) {
      throw;
    } catch (const Error& error) {
      if (!options.skip_unreadable) {
        const std::string message =
            fmt::format("{} (extract stops at a file it cannot read; --skip-unreadable leaves such files out and lists them)", error.what());
        if (dynamic_cast<const IoError*>(&error) != nullptr) throw IoError(message);
        if (dynamic_cast<const UnsupportedError*>(&error) != nullptr) throw UnsupportedError(message);
        throw InputError(message);
      }
      leave_out(selection, begin, end, error.what(), cells);  // (`part`, perhaps half filled, is dropped)
      done_before += rows_of(begin, end);
      if (options.progress) options.progress(done_before, total);
      begin = end;
      continue;
    }
    cells.append(std::move(part));
    done_before += rows_of(begin, end);
    if (options.progress) options.progress(done_before, total);
    begin = end;
  }
  cells.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return cells;
}

void write_training_h5ad(const std::string& output, const SelectionFile& selection, const ExtractedCells& cells, const GeneTable& table,
                         const GeneVectorSource& source, const ExtractOptions& options) {
  const std::int64_t n = cells.n_cells();
  if (n == 0 && !cells.skipped.empty()) {
    throw InputError(fmt::format("{}: every selected file was left out as unreadable ({} files; the first: {})", selection.path,
                                 cells.skipped.size(), cells.skipped.front().value("error", std::string())));
  }
  if (n == 0) throw InputError(fmt::format("{}: the selected fragments hold no cell", selection.path));
  const std::string label_column = options.label_column.empty() ? selection.label_column : options.label_column;
  H5adWriter writer(output, n, static_cast<std::int64_t>(cells.genes.size()));
  DataFrame obs;
  obs.index.reserve(static_cast<std::size_t>(n));
  std::map<std::string, std::size_t> file_index;
  for (const auto& path : cells.files) file_index.emplace(path, file_index.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const auto r = static_cast<std::size_t>(i);
    // Unique across sources: "<file number in the selection>:<row>".
    obs.index.push_back(fmt::format("{}:{}", file_index.at(cells.files[r]), cells.rows[r]));
  }
  obs.columns.push_back(Column::categorical_or_missing(label_column, cells.labels));  // ("" is a missing label)
  obs.columns.push_back(Column::categorical("source_file", cells.files, /* sorted_categories = */ false));
  obs.columns.push_back(Column::from_ints("source_row", cells.rows));
  obs.columns.push_back(Column::from_strings("source_obs_name", cells.obs_names));
  obs.columns.push_back(Column::from_bools("celltyper_embedding_empty", cells.empty));
  std::vector<std::string> kept;  // the kept columns written, in the order asked
  for (const std::string& name : kept_obs_columns(options.keep_obs, label_column)) {
    const auto found = cells.kept_obs.find(name);
    if (found == cells.kept_obs.end()) continue;
    const auto& values = found->second;
    if (std::all_of(values.begin(), values.end(), [](const std::string& value) { return value.empty(); })) continue;  // no file had it
    std::vector<std::string> padded = values;
    padded.resize(static_cast<std::size_t>(n));
    obs.columns.push_back(Column::categorical_or_missing(name, padded));
    kept.push_back(name);
  }
  writer.write_obs(obs);

  DataFrame var;
  std::vector<std::int64_t> entrez_ids;
  std::vector<std::string> symbols;
  for (const std::int64_t entrez : cells.genes) {
    var.index.push_back(std::to_string(entrez));
    entrez_ids.push_back(entrez);
    const std::int32_t gene = table.find_entrez(entrez);
    symbols.push_back(gene == kNoGene ? std::string() : table.gene(gene).symbol);
  }
  var.columns.push_back(Column::from_ints("entrez_id", entrez_ids));
  var.columns.push_back(Column::from_strings("symbol", symbols));
  writer.write_var(var);

  writer.write_obsm(options.key, DenseMatrix{n, cells.dims, cells.values});
  const nlohmann::json embedding = {{"method", "GenePT-w: L2-normalised expression-weighted sum of gene vectors"},
                                    {"input", selection.path},
                                    {"dims", cells.dims},
                                    {"gene_vectors", source.description},
                                    {"gene_vectors_identity", source.identity},
                                    {"gene_table_hash", table.content_hash_hex()},
                                    {"celltyper_version", CELLTYPER_VERSION}};
  writer.write_uns_string("celltyper_embedding", embedding.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  const nlohmann::json& document = selection.document;
  const nlohmann::json extract = {{"selection", selection.path},
                                  {"label_column", label_column},
                                  {"obsm_key", options.key},
                                  {"n_cells", n},
                                  {"n_fragments", selection.fragments.size()},
                                  {"fragment_rows", document.value("fragment_rows", 0)},
                                  {"selection_options", document.value("options", nlohmann::json::object())},
                                  {"selection_objective", document.value("objective", nlohmann::json::object())},
                                  {"files", cells.file_info},
                                  {"skipped_files", cells.skipped},
                                  {"kept_obs", kept},
                                  {"matrix", options.embed.matrix}};
  writer.write_uns_string(kExtractUnsKey, extract.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  writer.commit();
}

}  // namespace celltyper
