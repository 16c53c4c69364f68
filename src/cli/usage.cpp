// Command-line usage rules shared by every subcommand: the bounds of common numeric flags (one
// table, shown in --help and checked while parsing) and the one-line message of a usage error.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/parallel.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <charconv>
#include <filesystem>
#include <cstdint>

namespace celltyper::cli {

namespace {

/// Bounds of a flag that several subcommands share. `command` is the subcommand path
/// ("genes neighbors"); "" applies to every subcommand without a row of its own.
struct FlagBounds {
  const char* flag;
  const char* command;
  CLI::Validator validator;
};

CLI::Validator memory_limit_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          (void)parse_memory_limit(text);
          return {};
        } catch (const InputError& error) {
          return error.what();
        }
      },
      fmt::format("BYTES in {}", kMemoryLimitRange));
}

/// An integer in [minimum, maximum] (CLI::Range's help, "INT in [a - b]"; a word is "not an
/// integer", not "not in range").
CLI::Validator integer_range(std::int64_t minimum, std::int64_t maximum) {
  return CLI::Validator(
      [minimum, maximum](std::string& text) -> std::string {
        std::int64_t value = 0;
        const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (status == std::errc::result_out_of_range) return fmt::format("{} is outside [{} - {}]", text, minimum, maximum);
        if (status != std::errc() || end != text.data() + text.size()) return fmt::format("'{}' is not an integer", text);
        if (value < minimum || value > maximum) return fmt::format("{} is outside [{} - {}]", value, minimum, maximum);
        return {};
      },
      fmt::format("INT in [{} - {}]", minimum, maximum));
}

/// An integer >= `minimum` (for flags whose upper end is the type's).
CLI::Validator at_least(std::int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        std::int64_t value = 0;
        const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (status != std::errc() || end != text.data() + text.size()) return fmt::format("'{}' is not an integer", text);
        if (value < minimum) return fmt::format("{} is below the minimum {}", value, minimum);
        return {};
      },
      fmt::format("INT >= {}", minimum));
}

const std::vector<FlagBounds>& flag_bounds() {
  static const std::vector<FlagBounds> table = {
      {"threads", "", integer_range(0, kMaxThreads)},
      {"dims", "genes neighbors", integer_range(0, kMaxDims)},  // 0 = all dimensions
      {"dims", "genes combine", integer_range(0, kMaxDims)},    // 0 = all dimensions
      {"dims", "genes embed", integer_range(1, kMaxLsaDims)},   // LSA dimensions
      {"dims", "", integer_range(1, kMaxDims)},
      {"memory-limit", "", memory_limit_validator()},
      {"max-cells", "inspect", at_least(0)},
  };
  return table;
}

std::string command_path(const CLI::App* app) {
  std::vector<std::string> names;
  for (const CLI::App* at = app; at != nullptr && at->get_parent() != nullptr; at = at->get_parent()) names.push_back(at->get_name());
  std::reverse(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, " "));
}

void apply_bounds(CLI::App* app) {
  const std::string path = command_path(app);
  for (CLI::Option* option : app->get_options()) {
    const auto& names = option->get_lnames();
    const FlagBounds* chosen = nullptr;
    for (const FlagBounds& bounds : flag_bounds()) {
      if (std::find(names.begin(), names.end(), bounds.flag) == names.end()) continue;
      if (bounds.command == path) {
        chosen = &bounds;
        break;
      }
      if (chosen == nullptr && std::string(bounds.command).empty()) chosen = &bounds;
    }
    if (chosen != nullptr) option->check(chosen->validator);
    // --threads N also bounds the work no option reaches (reading files, loading the model).
    if (std::find(names.begin(), names.end(), "threads") != names.end()) {
      option->each([](const std::string& text) { set_default_threads(std::stoi(text)); });
    }
  }
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) apply_bounds(sub);
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : const_cast<CLI::App&>(app).get_subcommands([](CLI::App*) { return true; })) names.push_back(sub->get_name());
  return names;
}

}  // namespace

void apply_flag_bounds(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) apply_bounds(sub);
}

namespace {

/// For each flag of `argv` that `at` does not have: what it is called here (another library's
/// hyperparameter name given to `train`, or a misspelt flag); "" when none is known.
std::string unknown_flag_hints(const CLI::App& at, const std::string& path, int argc, char** argv) {
  std::vector<std::string> flags;
  for (const CLI::Option* option : at.get_options()) {
    for (const std::string& name : option->get_lnames()) flags.push_back("--" + name);
  }
  // the classifier asked for (--classifier NAME or --classifier=NAME), else the flag's default
  const CLI::Option* chosen = at.get_option_no_throw("--classifier");
  std::string classifier = chosen != nullptr ? chosen->get_default_str() : std::string();
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--classifier" && i + 1 < argc) classifier = argv[i + 1];
    if (word.rfind("--classifier=", 0) == 0) classifier = word.substr(13);
  }
  std::vector<std::string> hints;
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.size() < 3 || word.rfind("--", 0) != 0) continue;
    word = word.substr(0, word.find('='));
    if (std::find(flags.begin(), flags.end(), word) != flags.end() || at.get_option_no_throw(word) != nullptr) continue;
    std::string hint;
    if (path == "train") {
      hint = foreign_hyperparameter(classifier, word.substr(2), [](const std::string& ours) {
        std::string flag = ours;
        std::replace(flag.begin(), flag.end(), '_', '-');
        return "--" + flag;
      });
    }
    // CellTypist's and SingleR's options, as their users spell them on a command line
    static const std::map<std::string, std::string> other_tools = {
        {"--p-thres", "CellTypist's p_thres is --min-score (cells whose best score is below it are Unassigned); for cells of a type the "
                      "reference lacks, --unassign-unlike"},
        {"--majority-voting", "CellTypist's majority voting is --over-clustering obs:COLUMN (a column of clusters; celltyper does not cluster)"},
        {"--mode", "there are no 'prob match' multi-labels: --top-k 2 writes each cell's two best labels and scores, --hierarchical the Cell "
                   "Ontology term their summed score reaches"},
        {"--top-genes", "CellTypist's top_genes is closest to --n-genes, the size of the panel of most variable genes"},
        {"--balance-cell-type", "classes are balanced by default (--class-balanced 0 weighs every cell alike)"},
        {"--ref", "SingleR's ref is --reference REF.h5ad (several: comma-separated) with --label obs:COLUMN (reference mode), or --model "
                  "MODEL.h5 (a model trained once)"},
        {"--labels", "SingleR's labels is --label obs:COLUMN, the references' column of cell types"},
        {"--prune", "SingleR's pruned labels: --unassign-unlike leaves cells unlike every reference type Unassigned (--min-score: those "
                    "below a score)"},
        {"--fine-tune", "SingleR's fine-tuning has no counterpart: reference mode trains a classifier on every reference cell over the "
                        "genes the query shares; --top-k 2 writes each cell's runner-up and its score (SingleR's delta.next)"},
        {"--clusters", "SingleR's clusters is closest to --over-clustering obs:COLUMN (each cluster's majority label, "
                       "celltyper_majority_vote)"},
        {"--de-method", "there is no marker-gene step: a logistic regression on the most variable genes the query shares (--n-genes)"},
    };
    if (const auto found = other_tools.find(word); hint.empty() && found != other_tools.end()) hint = found->second;
    // (a name of one or two letters is one edit from every other short flag: no guess)
    if (hint.empty() && word.size() > 4) {
      if (const std::string closest = detail::closest_to(word, flags); !closest.empty()) hint = fmt::format("did you mean {}?", closest);
    }
    if (!hint.empty()) hints.push_back(fmt::format("{}: {}", word, hint));
  }
  return fmt::format("{}", fmt::join(hints, "; "));
}

}  // namespace

std::string usage_error_message(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  const CLI::App* at = deepest_parsed(app);
  const std::string path = command_path(at);
  const std::vector<std::string> commands = subcommand_names(*at);
  const std::string help = path.empty() ? std::string("celltyper --help") : fmt::format("celltyper {} --help", path);
  std::string message = error.what();
  std::replace(message.begin(), message.end(), '\n', ' ');
  while (!message.empty() && message.back() == ' ') message.pop_back();
  if (!commands.empty()) {
    // `path` needs a subcommand: the first word after it that is not a flag should have been one.
    std::size_t depth = 0;
    for (const CLI::App* up = at; up->get_parent() != nullptr; up = up->get_parent()) ++depth;
    std::size_t seen = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string word = argv[i];
      if (word.empty() || word.front() == '-') continue;
      if (seen++ < depth) continue;
      return fmt::format("unknown command '{}'{} (commands: {}; see '{}')", word, path.empty() ? "" : " of '" + path + "'",
                         fmt::join(commands, ", "), help);
    }
    if (message.find("subcommand") != std::string::npos) {
      return fmt::format("a command is required{} (commands: {}; see '{}')", path.empty() ? "" : " after '" + path + "'",
                         fmt::join(commands, ", "), help);
    }
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    if (const std::string hints = unknown_flag_hints(*at, path, argc, argv); !hints.empty()) message += "; " + hints;
  }
  return fmt::format("{}{} (see '{}')", path.empty() ? "" : path + ": ", message, help);
}

const CLI::App* deepest_parsed(const CLI::App& app) {
  const CLI::App* at = &app;
  for (;;) {
    const auto parsed = at->get_subcommands();
    if (parsed.empty()) return at;
    at = parsed.front();
  }
}

std::vector<std::string> split_path_list(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& value : values) {
    std::error_code error;
    if (value.find(',') == std::string::npos || std::filesystem::exists(value, error)) {
      out.push_back(value);
      continue;
    }
    std::size_t start = 0;
    for (std::size_t comma = value.find(','); ; comma = value.find(',', start)) {
      if (std::string part = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start); !part.empty()) {
        out.push_back(std::move(part));
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

}  // namespace celltyper::cli
