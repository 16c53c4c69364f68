// `celltyper inspect FILE`: describe a dataset (h5ad, Cell Ranger .h5 or MTX directory).
#include <celltyper/dataset.hpp>
#include <celltyper/inspect.hpp>

#include "cli/commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace celltyper::cli {

void add_inspect(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string path;
    bool json = false;
    InspectOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("inspect", "Describe a dataset: shape, encodings, value scale, obs columns, gene ids");
  command->add_option("file", args->path, "An .h5ad file, a Cell Ranger .h5 file or a Cell Ranger MTX directory")->required();
  command->add_flag("--json", args->json, "Print machine-readable JSON");
  command->add_option("--layer", args->options.matrix, "Matrix to scan: X (default), raw, or a layer name");
  command->add_option("--max-cells", args->options.max_cells, "Scan only the first N cells of the matrix (default: all)");
  command->add_option("--top", args->options.top_categories, "Categories listed per obs column")->capture_default_str();
  command->callback([args, &global] {
    (void)global;
    const auto dataset = open_dataset(args->path);
    const nlohmann::json report = inspect_dataset(*dataset, args->options);
    if (args->json) {
      fmt::print("{}\n", report.dump(2));
    } else {
      fmt::print("{}", format_inspect_report(report));
    }
  });
}

}  // namespace celltyper::cli
