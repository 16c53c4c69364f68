// Hostile and broken input end to end (issue #19), on tiny fixtures: outputs that are inputs,
// special files and symlinks as outputs, kills mid-write, stale temporaries, files that would give
// a silent wrong answer, and the exit-code contract (README, "Errors and exit codes"): one table
// pins the exit code and the first words of the message of every error class.
#include <celltyper/gene_store.hpp>

#include "support/test_support.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace celltyper {
namespace {

namespace fs = std::filesystem;

/// The tiny world: dataset A (12 cells x 10 genes, tests/data/h5ad/csr_float32.h5ad), a gene table
/// of its 10 genes, an 8-dim random gene store and a logistic-regression model trained on it.
class TinyWorld {
 public:
  TinyWorld() {
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    const std::vector<std::pair<std::int64_t, std::string>> genes = {{916, "CD3E"},  {931, "MS4A1"},  {4069, "LYZ"},  {929, "CD14"},
                                                                     {4818, "NKG7"}, {10578, "GNLY"}, {973, "CD79A"}, {3043, "HBB"},
                                                                     {3575, "IL7R"}, {6279, "S100A8"}};
    std::ofstream tsv(table);
    tsv << "entrez_id\tsymbol\n";
    std::vector<std::int64_t> entrez;
    std::vector<std::string> symbols;
    std::vector<float> matrix;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal;
    for (const auto& [id, symbol] : genes) {
      tsv << id << '\t' << symbol << '\n';
      entrez.push_back(id);
      symbols.push_back(symbol);
      for (int d = 0; d < 8; ++d) matrix.push_back(normal(rng));
    }
    tsv.close();
    GeneStoreProvenance provenance;
    provenance.backend = "test-random";
    GeneStore(entrez, symbols, std::vector<std::string>(genes.size()), matrix, 8, provenance).save(store);
    fs::copy_file(test::fixture("h5ad/csr_float32.h5ad"), query);
    const auto trained = test::run_cli({"train", "-r", query, "-l", "obs:cell_type", "-g", store, "--gene-table", table, "-o", model,
                                        "--validation-fraction", "0", "-q"});
    if (trained.exit_code != 0) throw std::runtime_error("training the tiny model failed: " + trained.err);
  }
  /// `celltyper annotate` of the query with the tiny model, plus `extra` arguments.
  [[nodiscard]] std::vector<std::string> annotate(std::vector<std::string> extra) const {
    std::vector<std::string> args{"annotate", "-m", model, "-i", query, "--gene-table", table, "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  test::TempDir dir;
  const std::string table = dir.file("genes.tsv");
  const std::string store = dir.file("store.h5");
  const std::string query = dir.file("query.h5ad");
  const std::string model = dir.file("model.h5");
};

/// Expect exit code `code` and exactly one stderr line starting with "celltyper: error: " + `start`.
void expect_one_line(const test::CommandResult& result, int code, const std::string& start) {
  SCOPED_TRACE(start);
  EXPECT_EQ(result.exit_code, code) << result.err;
  EXPECT_EQ(result.err.rfind("celltyper: error: " + start, 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(HostileCli, OutputThatIsAnInputIsRefusedAndTheInputKept) {
  TinyWorld world;
  const std::string query_bytes = test::read_file(world.query);
  const std::string model_bytes = test::read_file(world.model);
  const std::string store_bytes = test::read_file(world.store);
  fs::create_hard_link(world.query, world.dir.file("hard_link.h5ad"));
  fs::create_directory(world.dir.path() / "sub");
  const std::string query_other_spelling = (world.dir.path() / "sub" / ".." / "query.h5ad").string();
  struct Case {
    std::vector<std::string> args;
    std::string start;
  };
  const std::vector<Case> cases = {
      {{"train", "-r", world.query, "-l", "cell_type", "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("hard_link.h5ad"),
        "--validation-fraction", "0"},
       world.dir.file("hard_link.h5ad") + ": the output is the same file as the input " + world.query},
      {{"train", "-r", world.query, "-l", "cell_type", "-g", world.store, "--gene-table", world.table, "-o", query_other_spelling,
        "--validation-fraction", "0"},
       query_other_spelling + ": the output is the same file as the input"},
      {world.annotate({"-o", world.dir.file("out.h5ad"), "--csv", world.query}), world.query + ": the output is an input of this command"},
      {world.annotate({"-o", world.model}), world.model + ": the output is an input of this command"},
      {world.annotate({"-o", world.dir.file("hard_link.h5ad")}), world.dir.file("hard_link.h5ad") + ": the output is the same file as"},
      {{"embed", "-i", world.query, "-g", world.store, "--gene-table", world.table, "-o", world.store},
       world.store + ": the output is an input of this command"},
      {{"genes", "truncate", world.store, "--dims", "4", "-o", world.store}, world.store + ": the output is an input"},
      {world.annotate({"-o", world.dir.file("same.out"), "--csv", world.dir.file("sub/../same.out")}),
       world.dir.file("same.out") + ": the same file is given for two outputs"},
  };
  for (const auto& c : cases) expect_one_line(test::run_cli(c.args), 2, c.start);
  EXPECT_EQ(test::read_file(world.query), query_bytes);
  EXPECT_EQ(test::read_file(world.model), model_bytes);
  EXPECT_EQ(test::read_file(world.store), store_bytes);
  EXPECT_FALSE(fs::exists(world.dir.file("out.h5ad")));
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
}

TEST(HostileCli, SpecialOutputsAreWrittenThroughOrRefused) {
  TinyWorld world;
  // /dev/null stays the null device.
  struct stat null_before {};
  ASSERT_EQ(stat("/dev/null", &null_before), 0);
  const auto to_null = test::run_cli(world.annotate({"-o", "/dev/null"}));
  EXPECT_EQ(to_null.exit_code, 0) << to_null.err;
  struct stat null_after {};
  ASSERT_EQ(stat("/dev/null", &null_after), 0);
  EXPECT_TRUE(S_ISCHR(null_after.st_mode));
  EXPECT_EQ(null_after.st_rdev, null_before.st_rdev);
  // A symlink stays a link; its target gets the file.
  fs::create_directory(world.dir.path() / "real");
  fs::create_symlink("real/annotated.h5ad", world.dir.file("link.h5ad"));
  const auto via_link = test::run_cli(world.annotate({"-o", world.dir.file("link.h5ad"), "--csv", world.dir.file("labels.csv")}));
  EXPECT_EQ(via_link.exit_code, 0) << via_link.err;
  EXPECT_TRUE(fs::is_symlink(world.dir.file("link.h5ad")));
  EXPECT_EQ(test::read_file(world.dir.file("real/annotated.h5ad")).substr(1, 3), "HDF");
  EXPECT_NE(test::read_file(world.dir.file("labels.csv")).find("celltyper_label"), std::string::npos);
  // A FIFO gets the bytes of the finished file.
  const std::string fifo = world.dir.file("out.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = test::read_file(fifo); });
  const auto to_fifo = test::run_cli(world.annotate({"-o", fifo}));
  reader.join();
  EXPECT_EQ(to_fifo.exit_code, 0) << to_fifo.err;
  EXPECT_EQ(received.substr(1, 3), "HDF");
  struct stat fifo_info {};
  ASSERT_EQ(lstat(fifo.c_str(), &fifo_info), 0);
  EXPECT_TRUE(S_ISFIFO(fifo_info.st_mode));
  // A directory and a block device are refused before any work.
  fs::create_directory(world.dir.path() / "folder");
  expect_one_line(test::run_cli(world.annotate({"-o", world.dir.file("folder")})), 2,
                  world.dir.file("folder") + ": the output path is a directory");
  const std::string block = world.dir.file("block");
  if (mknod(block.c_str(), S_IFBLK | 0600, makedev(7, 200)) == 0) {
    expect_one_line(test::run_cli(world.annotate({"-o", block})), 2, block + ": the output path is a block device");
    struct stat block_info {};
    ASSERT_EQ(lstat(block.c_str(), &block_info), 0);
    EXPECT_TRUE(S_ISBLK(block_info.st_mode));
  }
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
}

TEST(HostileCli, PipelineConventions) {
  // What a workflow step relies on: '-' is standard output where a text output takes it (and
  // refused for a file output), an output folder that is missing fails before any work, a path
  // with a comma is one reference, --genes in model mode is a warning (a step that always passes
  // it), --model with --reference is named as the conflict.
  TinyWorld world;
  const auto to_stdout = test::run_cli(world.annotate({"--csv", "-"}));
  EXPECT_EQ(to_stdout.exit_code, 0) << to_stdout.err;
  EXPECT_EQ(to_stdout.out.rfind("obs_name,celltyper_label,", 0), 0u) << to_stdout.out;
  EXPECT_FALSE(fs::exists(world.dir.file("-")));
  EXPECT_FALSE(fs::exists(fs::path("-")));
  const auto summary_on_stderr = test::run_cli({"annotate", "-m", world.model, "-i", world.query, "--gene-table", world.table, "--csv", "-"});
  EXPECT_NE(summary_on_stderr.err.find("label "), std::string::npos) << summary_on_stderr.err;
  EXPECT_EQ(summary_on_stderr.out, to_stdout.out);
  expect_one_line(test::run_cli(world.annotate({"-o", "-"})), 2, "-: this output cannot go to standard output; give a file name");
  expect_one_line(test::run_cli(world.annotate({"--csv", "-", "--json"})), 2, "--csv - and --json both write to standard output");

  const std::vector<std::string> train{"train", "-l", "obs:cell_type", "--gene-table", world.table, "--validation-fraction", "0"};
  auto trained = train;
  trained.insert(trained.end(), {"-r", world.query, "-o", world.dir.file("no/folder/m.h5")});
  const auto missing_folder = test::run_cli(trained);
  expect_one_line(missing_folder, 3, world.dir.file("no/folder/m.h5") + ": cannot create: ");  // (one line: before training said anything)
  const std::string comma = world.dir.file("ref,v2.h5ad");
  fs::copy_file(world.query, comma);
  trained = train;
  trained.insert(trained.end(), {"-r", comma, "-o", world.dir.file("comma.h5"), "-q"});
  const auto with_comma = test::run_cli(trained);
  EXPECT_EQ(with_comma.exit_code, 0) << with_comma.err;

  const auto genes_in_model_mode = test::run_cli(world.annotate({"--genes", world.store, "--csv", world.dir.file("g.csv")}));
  EXPECT_EQ(genes_in_model_mode.exit_code, 0) << genes_in_model_mode.err;
  EXPECT_NE(genes_in_model_mode.err.find("warning: --genes " + world.store + " is not used: a model carries"), std::string::npos)
      << genes_in_model_mode.err;
  expect_one_line(test::run_cli(world.annotate({"-r", world.query, "-l", "obs:cell_type", "--csv", world.dir.file("b.csv")})), 2,
                  "--model and --reference exclude each other");

  // The same command twice writes the same bytes (no HDF5 object timestamps): content hashes of
  // a workflow's outputs stay put. (A model file records when and how fast it was trained.)
  for (const std::string name : {"once", "twice"}) {
    ASSERT_EQ(test::run_cli(world.annotate({"-o", world.dir.file(name + ".h5ad")})).exit_code, 0);
    ASSERT_EQ(test::run_cli({"embed", "-i", world.query, "-g", world.store, "--gene-table", world.table, "-o", world.dir.file(name + ".h5"), "-q"})
                  .exit_code,
              0);
    if (name == "once") std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // (HDF5 times are in seconds)
  }
  EXPECT_EQ(test::read_file(world.dir.file("once.h5ad")), test::read_file(world.dir.file("twice.h5ad")));
  EXPECT_EQ(test::read_file(world.dir.file("once.h5")), test::read_file(world.dir.file("twice.h5")));

  // A model too, under SOURCE_DATE_EPOCH (the reproducible-builds convention): that time as its
  // creation time, no measured durations. Malformed: refused before the work.
  ::setenv("SOURCE_DATE_EPOCH", "1764892800", 1);
  for (const std::string classifier : {"logreg", "mlp", "xgboost"}) {
    for (const std::string name : {"once", "twice"}) {
      std::vector<std::string> args{"train", "-r", world.query, "-l", "obs:cell_type", "-g", world.store, "--gene-table", world.table,
                                    "--classifier", classifier, "-o", world.dir.file(classifier + name + ".h5"), "-q"};
      if (classifier == "mlp") args.insert(args.end(), {"--epochs", "3"});
      if (classifier == "xgboost") args.insert(args.end(), {"--n-estimators", "5"});
      ASSERT_EQ(test::run_cli(args).exit_code, 0);
      if (name == "once") std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    }
    EXPECT_EQ(test::read_file(world.dir.file(classifier + "once.h5")), test::read_file(world.dir.file(classifier + "twice.h5"))) << classifier;
  }
  const auto described = test::run_cli({"inspect", world.dir.file("logregonce.h5")});
  EXPECT_NE(described.out.find("on 2025-12-05T00:00:00Z"), std::string::npos) << described.out;
  ::setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
  expect_one_line(test::run_cli({"train", "-r", world.query, "-l", "obs:cell_type", "-g", world.store, "--gene-table", world.table, "-o",
                                 world.dir.file("never.h5")}),
                  2, "SOURCE_DATE_EPOCH 'yesterday' is not a number of seconds");
  ::unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_FALSE(fs::exists(world.dir.file("never.h5")));
}

TEST(HostileCli, AFullDiskIsOneLineAndExitCode3) {
  // Writes failing part-way (a file size limit with SIGXFSZ ignored: EFBIG, as on a full disk)
  // while a model and an annotated h5ad are written: one line naming the file, exit 3, nothing
  // left behind. (Was a SIGSEGV after the message: HDF5's clean-up at exit closing the file.)
  TinyWorld world;
  const auto limited = [](const std::vector<std::string>& args) {
    std::string command = fmt::format("ulimit -f 4; trap '' XFSZ; exec '{}'", CELLTYPER_CLI_PATH);
    for (const std::string& arg : args) command += " '" + arg + "'";
    return test::run_program({"/bin/sh", "-c", command});
  };
  const std::string model = world.dir.file("big.h5");
  const auto train = limited({"train", "-r", world.query, "-l", "obs:cell_type", "--gene-table", world.table, "-o", model,
                              "--validation-fraction", "0", "-q"});
  expect_one_line(train, 3, model + ": ");
  const std::string annotated = world.dir.file("annotated.h5ad");
  const auto annotate = limited(world.annotate({"-o", annotated}));
  EXPECT_EQ(annotate.exit_code, 3) << annotate.err;
  EXPECT_EQ(std::count(annotate.err.begin(), annotate.err.end(), '\n'), 1) << annotate.err;
  EXPECT_NE(annotate.err.find(".annotated.h5ad.tmp-"), std::string::npos) << annotate.err;
  EXPECT_FALSE(fs::exists(model));
  EXPECT_FALSE(fs::exists(annotated));
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
}

TEST(HostileCli, AnnotateCommitsTheH5adAndTheCsvTogether) {
  TinyWorld world;
  const std::string out = world.dir.file("out.h5ad");
  // The CSV cannot be written (missing directory, or a directory): no h5ad either.
  expect_one_line(test::run_cli(world.annotate({"-o", out, "--csv", world.dir.file("no/such/dir/labels.csv")})), 3,
                  world.dir.file("no/such/dir/labels.csv") + ": cannot create");
  EXPECT_FALSE(fs::exists(out));
  fs::create_directory(world.dir.path() / "labels_dir");
  expect_one_line(test::run_cli(world.annotate({"-o", out, "--csv", world.dir.file("labels_dir")})), 2,
                  world.dir.file("labels_dir") + ": the output path is a directory");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
  const auto both = test::run_cli(world.annotate({"-o", out, "--csv", world.dir.file("labels.csv")}));
  EXPECT_EQ(both.exit_code, 0) << both.err;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_TRUE(fs::exists(world.dir.file("labels.csv")));
}

TEST(HostileCli, StaleTemporariesOfDeadRunsAreSweptByTheNextRun) {
  TinyWorld world;
  const pid_t dead = [] {
    const pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return child;
  }();
  const std::string stale_h5ad = world.dir.file(fmt::format(".out.h5ad.tmp-{}-1234abcd", dead));
  const std::string stale_csv = world.dir.file(fmt::format(".labels.csv.tmp-{}-1234abcd", dead));
  std::ofstream(stale_h5ad) << "partial output of a killed run";
  std::ofstream(stale_csv) << "partial";
  const auto run = test::run_cli(world.annotate({"-o", world.dir.file("out.h5ad"), "--csv", world.dir.file("labels.csv")}));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_FALSE(fs::exists(stale_h5ad));
  EXPECT_FALSE(fs::exists(stale_csv));
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
}

/// annotate into a FIFO nobody reads: the run blocks in the final write with its finished
/// temporary file staged in TMPDIR; the signal must remove it and end the process.
void expect_kill_leaves_nothing(int signal_number) {
  TinyWorld world;
  const std::string query_bytes = test::read_file(world.query);
  const std::string tmpdir = world.dir.file("tmp");
  fs::create_directory(tmpdir);
  const std::string fifo = world.dir.file("out.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const pid_t child = test::spawn_cli(world.annotate({"-o", fifo}), tmpdir);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool staged = false;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!test::temporaries_in(tmpdir).empty()) {
      staged = true;
      break;
    }
    if (waitpid(child, &status, WNOHANG) == child) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(staged) << "the run never staged its output";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // usually blocked in open() of the FIFO by now
  kill(child, signal_number);
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal_number) << "status " << status;
  EXPECT_TRUE(test::temporaries_in(tmpdir).empty()) << "the staged temporary file survived the signal";
  EXPECT_TRUE(test::temporaries_in(world.dir.path()).empty());
  EXPECT_EQ(test::read_file(world.query), query_bytes);
  struct stat info {};
  ASSERT_EQ(lstat(fifo.c_str(), &info), 0);
  EXPECT_TRUE(S_ISFIFO(info.st_mode));
}

TEST(HostileCli, SigtermMidWriteLeavesNothing) { expect_kill_leaves_nothing(SIGTERM); }
TEST(HostileCli, SigintMidWriteLeavesNothing) { expect_kill_leaves_nothing(SIGINT); }

/// Set element 0 of /classifier/float64_weights (logistic regression) in `model` to `value` ("nan", "inf"), with h5py.
/// Set the model's first classifier weight to `value` through HDF5 (the checksum is left as it
/// was, or with `strip_checksum` cleared, as in a model written before checksums).
void poison_model(const std::string& model, const std::string& value, bool strip_checksum = false) {
  const std::string script = fmt::format(
      "import h5py, numpy as np\n"
      "with h5py.File('{0}', 'r+') as f:\n"
      "    d = f['classifier']['float64_weights']\n"
      "    v = d[()].ravel(); v[0] = float('{1}'); d[...] = v.reshape(d.shape)\n"
      "if {2}:\n"
      "    with open('{0}', 'r+b') as f: f.write(bytes(64))\n",
      model, value, strip_checksum ? "True" : "False");
  const auto run = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(run.exit_code, 0) << run.err;
}

TEST(HostileCli, SilentWrongAnswersAreRefused) {
  TinyWorld world;
  const std::string range_index = test::fixture("hostile/var_range_index.h5ad");
  const std::vector<std::string> embed{"embed", "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("e.npy"), "-i"};
  auto with = [](std::vector<std::string> args, const std::string& last) {
    args.push_back(last);
    return args;
  };
  // RangeIndex var and missing var: not read as Entrez ids (the table knows no id 0..9 here, but
  // human_genes.tsv would "match" 1..9).
  expect_one_line(test::run_cli(with(embed, range_index)), 2, range_index + ":/var: var has no gene names");
  EXPECT_NE(test::run_cli(with(embed, range_index)).err.find("--gene-column"), std::string::npos);
  const std::string missing_var = test::fixture("hostile/var_missing.h5ad");
  expect_one_line(test::run_cli(with(embed, missing_var)), 2, missing_var + ":/var: var has no gene names");
  expect_one_line(test::run_cli({"annotate", "-m", world.model, "-i", range_index, "--gene-table", world.table, "-o", world.dir.file("r.h5ad")}),
                  2, range_index + ":/var: var has no");
  // With gene ids in a column, auto-detection uses that column; naming the index is refused.
  const std::string with_ids = test::fixture("hostile/var_range_index_gene_ids.h5ad");
  expect_one_line(test::run_cli({"embed", "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("f.npy"), "-i", with_ids,
                                 "--gene-column", "_index"}),
                  2, with_ids + ":/var: var column '_index' holds row numbers");
  // Duplicate column indices in a CSR row.
  const std::string duplicates = test::fixture("hostile/csr_duplicate_indices.h5ad");
  expect_one_line(test::run_cli(with(embed, duplicates)), 2, duplicates + ": X stores the entry at row 0, column 0 twice");
  // Unsorted (but unique) indices: the same embedding as the sorted file.
  const auto sorted = test::run_cli(with(embed, world.query));
  ASSERT_EQ(sorted.exit_code, 0) << sorted.err;
  const std::string sorted_bytes = test::read_file(world.dir.file("e.npy"));
  const auto unsorted = test::run_cli(with(embed, test::fixture("hostile/csr_unsorted_indices.h5ad")));
  ASSERT_EQ(unsorted.exit_code, 0) << unsorted.err;
  EXPECT_EQ(test::read_file(world.dir.file("e.npy")), sorted_bytes);
  // A model with a NaN (or Inf) classifier parameter: its checksum no longer holds; without one
  // (a model written before checksums) the non-finite value is named.
  for (const std::string bad : {"nan", "inf"}) {
    const std::string poisoned = world.dir.file("poisoned.h5");
    fs::copy_file(world.model, poisoned, fs::copy_options::overwrite_existing);
    poison_model(poisoned, bad);
    const auto result = test::run_cli(world.annotate({"-m", poisoned, "-o", world.dir.file("p.h5ad")}));
    // annotate() already passes the good model first: average of two, one poisoned.
    expect_one_line(result, 2, poisoned + ": the model file is damaged: its bytes differ from those it was written with");
    fs::copy_file(world.model, poisoned, fs::copy_options::overwrite_existing);
    poison_model(poisoned, bad, true);
    const auto unchecked = test::run_cli(world.annotate({"-m", poisoned, "-o", world.dir.file("p.h5ad")}));
    expect_one_line(unchecked, 2, poisoned + ": /classifier/float64_weights has a non-finite value (" + bad + ") at index 0");
  }
  // A finite weight altered (a flipped bit in transfer): nothing else would notice.
  {
    const std::string altered = world.dir.file("altered.h5");
    fs::copy_file(world.model, altered, fs::copy_options::overwrite_existing);
    poison_model(altered, "0.125");
    expect_one_line(test::run_cli({"inspect", altered}), 2, altered + ": the model file is damaged");
    // the intact model still loads (inspect: exit 0), and a copy of it too
    EXPECT_EQ(test::run_cli({"inspect", world.model}).exit_code, 0);
  }
  EXPECT_FALSE(fs::exists(world.dir.file("p.h5ad")));
}

/// Run `celltyper args...` as user nobody (when root), to meet "permission denied".
test::CommandResult run_cli_as_nobody(const std::vector<std::string>& args) {
  if (geteuid() != 0) return test::run_cli(args);
  int err_pipe[2];
  if (pipe(err_pipe) != 0) return {};
  const pid_t child = fork();
  if (child == 0) {
    close(err_pipe[0]);
    dup2(err_pipe[1], STDERR_FILENO);
    const int null = open("/dev/null", O_RDWR);
    dup2(null, STDOUT_FILENO);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(126);
    std::vector<char*> argv{const_cast<char*>(CELLTYPER_CLI_PATH)};
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(CELLTYPER_CLI_PATH, argv.data());
    _exit(127);
  }
  close(err_pipe[1]);
  test::CommandResult result;
  char buffer[4096];
  for (ssize_t n; (n = read(err_pipe[0], buffer, sizeof buffer)) > 0;) result.err.append(buffer, static_cast<std::size_t>(n));
  close(err_pipe[0]);
  int status = 0;
  waitpid(child, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

/// The exit-code contract of README "Errors and exit codes": code and first words per class.
// A shared server's uploads (session 55's hostile-input audit): links and storage outside the
// file, a chunk index HDF5 1.10 lists in quadratic time, categories named twice, shapes a file
// never stored, MatrixMarket files whose header disagrees with their entries, a damaged value in
// a text table's first count column, bytes that are no UTF-8, and a default output name planted
// as a symbolic link.
TEST(HostileCli, UploadsThatReachOutsideTheFileOrLieAboutItAreRefused) {
  if (test::run_program({test::system_python(), "-c", "import anndata, h5py"}).exit_code != 0) GTEST_SKIP() << "no anndata / h5py";
  TinyWorld world;
  const std::string make = fmt::format(R"(
import anndata, h5py, numpy as np, os, scipy.sparse as sp, gzip
d = '{0}'
a = anndata.read_h5ad('{1}')
a.write_h5ad(d + '/target.h5ad')
def variant(name, edit):
    a.write_h5ad(d + '/' + name)
    with h5py.File(d + '/' + name, 'a') as f: edit(f)
def external_link(f):
    del f['X']; f['X'] = h5py.ExternalLink(d + '/target.h5ad', '/X')
variant('external_link.h5ad', external_link)
def soft_to_external(f):
    del f['X']; f['hidden'] = h5py.ExternalLink(d + '/target.h5ad', '/X'); f['X'] = h5py.SoftLink('/hidden')
variant('soft_to_external.h5ad', soft_to_external)
def never_stored(f):
    del f['X']; f.create_dataset('X', shape=(a.n_obs, a.n_vars), dtype='f4', chunks=(4, 4))
variant('dense_never_stored.h5ad', never_stored)
def external_storage(f):
    values = f['X/data'][:]; del f['X/data']
    values.tofile(d + '/raw.bin')
    f.create_dataset('X/data', shape=values.shape, dtype=values.dtype, external=[(d + '/raw.bin', 0, values.nbytes)])
variant('external_storage.h5ad', external_storage)
def virtual(f):
    values = f['X/data'][:]; del f['X/data']
    layout = h5py.VirtualLayout(shape=values.shape, dtype=values.dtype)
    layout[:] = h5py.VirtualSource(d + '/missing.h5', 'data', shape=values.shape)
    f.create_virtual_dataset('X/data', layout, fillvalue=7)
variant('virtual.h5ad', virtual)
def twice(f):
    f['obs/cell_type/categories'][1] = f['obs/cell_type/categories'][0]
variant('categories_twice.h5ad', twice)
def utf8(f):
    names = f['obs/_index'][:]; names[0] = b'\xffcell'
    attrs = dict(f['obs/_index'].attrs); del f['obs/_index']
    f.create_dataset('obs/_index', data=names, dtype=h5py.string_dtype())
    for k, v in attrs.items(): f['obs/_index'].attrs[k] = v
variant('not_utf8.h5ad', utf8)
def lie(f):
    f.create_dataset('obsm/celltyper_probabilities', shape=(a.n_obs, 1 << 22), dtype='f4', chunks=(1, 1024))
    f['uns'].create_dataset('celltyper_probabilities_classes', data='["B", "T"]')
variant('obsm_lie.h5ad', lie)
# 10,000 stored values in chunks of one (over kMaxDirectChunks): HDF5's reads, the same labels
many = anndata.AnnData(sp.csr_matrix(np.tile(a.X.toarray() + 1, (84, 1))[:1000]), obs=a.obs.iloc[np.arange(1000) % a.n_obs].copy(), var=a.var.copy())
many.obs_names = [f'c{{i}}' for i in range(1000)]
many.write_h5ad(d + '/many.h5ad')
many.write_h5ad(d + '/chunks_of_one.h5ad')
with h5py.File(d + '/chunks_of_one.h5ad', 'a') as f:
    for key in ('data', 'indices'):
        values = f['X/' + key][:]; del f['X/' + key]
        f.create_dataset('X/' + key, data=values, chunks=(1,))
# MatrixMarket folders: entries past the header's count, a symmetric matrix, a count no matrix holds
genes = list(a.var_names); cells = list(a.obs_names)
coo = sp.coo_matrix(a.X.T)
entries = [f'{{g + 1}} {{c + 1}} {{int(v)}}' for g, c, v in zip(coo.row, coo.col, coo.data)]
def mtx(name, banner, count, lines):
    os.makedirs(d + '/' + name, exist_ok=True)
    with gzip.open(d + '/' + name + '/matrix.mtx.gz', 'wt') as out:
        out.write(f'%%MatrixMarket matrix coordinate {{banner}}\n{{len(genes)}} {{len(cells)}} {{count}}\n' + '\n'.join(lines) + '\n')
    with gzip.open(d + '/' + name + '/features.tsv.gz', 'wt') as out: out.write(''.join(f'{{g}}\t{{g}}\tGene Expression\n' for g in genes))
    with gzip.open(d + '/' + name + '/barcodes.tsv.gz', 'wt') as out: out.write(''.join(c + '\n' for c in cells))
mtx('mtx_ok', 'integer general', len(entries), entries)
mtx('mtx_more', 'integer general', len(entries) - 3, entries)
mtx('mtx_symmetric', 'integer symmetric', len(entries), entries)
mtx('mtx_claims', 'integer general', 10 ** 9, entries)
mtx('mtx_twice', 'integer general', len(entries) + 1, entries + [entries[0]])
mtx('mtx_long_comment', 'integer general\n%' + 'x' * (1 << 20), len(entries), entries)
mtx('mtx_upper_case', 'INTEGER SYMMETRIC', len(entries), entries)
open(d + '/obs_twice.csv', 'w').write('cell,sample,sample\n' + ''.join(f'{{c}},s1,s2\n' for c in cells))
X = a.X.toarray().T.astype(int)
rows = [','.join(['gene'] + cells)] + [','.join([g] + [str(v) for v in X[i]]) for i, g in enumerate(genes)]
rows[1] = rows[1].replace(',' + str(X[0][0]), ',x', 1) if X[0][0] != 0 else rows[1].replace(',0', ',x', 1)
open(d + '/junk.csv', 'w').write('\n'.join(rows) + '\n')
)",
                                       world.dir.path().string(), world.query);
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto inspect = [&](const std::string& name) {
    return test::run_cli({"inspect", world.dir.file(name), "--gene-table", world.table});
  };
  // Nothing outside the file is read: an external link (its bytes were read from the linking
  // file), external raw storage (/etc/passwd read as numbers), a virtual dataset (its missing
  // source read as fill values).
  expect_one_line(inspect("external_link.h5ad"), 2, world.dir.file("external_link.h5ad") + ": '/X' is an external link to another file");
  expect_one_line(inspect("soft_to_external.h5ad"), 2, world.dir.file("soft_to_external.h5ad") + ": '/hidden' is an external link to another file");
  // A dense X the file never stored read as its fill value (zeros: cells without counts).
  expect_one_line(inspect("dense_never_stored.h5ad"), 2,
                  world.dir.file("dense_never_stored.h5ad") + ": X is a dense 12 x 10 array the file never stored");
  expect_one_line(inspect("external_storage.h5ad"), 2,
                  world.dir.file("external_storage.h5ad") + ": dataset '/X/data' keeps its values outside the file (external raw storage)");
  expect_one_line(inspect("virtual.h5ad"), 2, world.dir.file("virtual.h5ad") + ": dataset '/X/data' keeps its values outside the file (a virtual dataset)");
  // Categories named twice merged two labels into one class.
  const auto twice = test::run_cli({"train", "-r", world.dir.file("categories_twice.h5ad"), "-l", "obs:cell_type", "-g", world.store, "--gene-table",
                                    world.table, "-o", world.dir.file("twice.h5"), "-q"});
  EXPECT_EQ(twice.exit_code, 2) << twice.err;
  EXPECT_NE(twice.err.find("obs/cell_type: the category 'B' is named twice (categories 0 and 1)"), std::string::npos) << twice.err;
  // Bytes that are no UTF-8: JSON with a replacement character, not an internal error.
  const auto not_utf8 = test::run_cli({"inspect", world.dir.file("not_utf8.h5ad"), "--gene-table", world.table, "--json"});
  EXPECT_EQ(not_utf8.exit_code, 0) << not_utf8.err;
  EXPECT_NE(not_utf8.out.find("\xef\xbf\xbd" "cell"), std::string::npos) << not_utf8.out;
  // A shape the file never stored is not allocated (3.3 GB for a 2 MB file).
  expect_one_line(test::run_cli({"evaluate", "-i", world.dir.file("obsm_lie.h5ad"), "--truth", "obs:cell_type", "--pred", "obs:cell_type"}), 2,
                  world.dir.file("obsm_lie.h5ad") + ": obsm/celltyper_probabilities claims 12 x 4194304 values but the file never stored them");
  // Chunks of one value, more than kMaxDirectChunks: read by HDF5 (listing them took minutes),
  // the labels those of the same values stored whole.
  const auto whole = test::run_cli({"annotate", "-m", world.model, "-i", world.dir.file("many.h5ad"), "--gene-table", world.table, "--csv",
                                    world.dir.file("many.csv"), "-q"});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const auto ones = test::run_cli({"annotate", "-m", world.model, "-i", world.dir.file("chunks_of_one.h5ad"), "--gene-table", world.table, "--csv",
                                   world.dir.file("ones.csv"), "-q"});
  ASSERT_EQ(ones.exit_code, 0) << ones.err;
  EXPECT_EQ(test::csv_labels(world.dir.file("ones.csv")), test::csv_labels(world.dir.file("many.csv")));
  // MatrixMarket: entries past the header's count were left out, a symmetric matrix read as a
  // general one, a count beyond rows x columns decompressed whole before it was refused.
  EXPECT_EQ(inspect("mtx_ok").exit_code, 0) << inspect("mtx_ok").err;
  expect_one_line(inspect("mtx_more"), 2, world.dir.file("mtx_more") + "/matrix.mtx.gz: the header says");
  EXPECT_NE(inspect("mtx_more").err.find("entries but more follow them"), std::string::npos);
  expect_one_line(inspect("mtx_symmetric"), 4, world.dir.file("mtx_symmetric") + "/matrix.mtx.gz: symmetric MatrixMarket matrices are not supported");
  expect_one_line(inspect("mtx_claims"), 2, world.dir.file("mtx_claims") + "/matrix.mtx.gz: the header claims 1000000000 entries in a 10 x 12 matrix");
  expect_one_line(inspect("mtx_twice"), 2, world.dir.file("mtx_twice") + "/matrix.mtx.gz: the entry of feature ");
  expect_one_line(inspect("mtx_long_comment"), 2, world.dir.file("mtx_long_comment") + "/matrix.mtx.gz: no size line (rows, columns, entries) in the file's first MiB");
  expect_one_line(inspect("mtx_upper_case"), 4, world.dir.file("mtx_upper_case") + "/matrix.mtx.gz: symmetric MatrixMarket matrices are not supported");
  // A cell table naming a column twice (one was lost).
  const auto obs_twice = test::run_cli({"annotate", "-m", world.model, "-i", world.dir.file("mtx_ok"), "--gene-table", world.table, "--obs",
                                        world.dir.file("obs_twice.csv"), "--csv", world.dir.file("obs_twice.out.csv"), "-q"});
  EXPECT_EQ(obs_twice.exit_code, 2) << obs_twice.err;
  EXPECT_NE(obs_twice.err.find("obs_twice.csv: the header names the column 'sample' twice (fields 2 and 3)"), std::string::npos) << obs_twice.err;
  // A damaged value in the first count column of a text table: an error, not a name column that
  // dropped the cell.
  const auto junk = test::run_cli({"annotate", "-m", world.model, "-i", world.dir.file("junk.csv"), "--gene-table", world.table, "--csv",
                                   world.dir.file("junk.out.csv"), "-q"});
  EXPECT_EQ(junk.exit_code, 2) << junk.err;
  EXPECT_NE(junk.err.find("junk.csv: line 2, column 2 ('x') is not a number"), std::string::npos) << junk.err;
  // A default output name planted as a symbolic link is not written through (a named one is).
  const std::string victim = world.dir.file("victim.txt");
  { std::ofstream(victim) << "precious\n"; }
  fs::copy_file(world.query, world.dir.file("shared.h5ad"));
  fs::create_symlink(victim, world.dir.file("shared.celltyper.h5ad"));
  expect_one_line(test::run_cli({"annotate", "-m", world.model, "-i", world.dir.file("shared.h5ad"), "--gene-table", world.table, "-q"}), 2,
                  world.dir.file("shared.celltyper.h5ad") + ": the default output name is a symbolic link (to " + victim + ")");
  std::ifstream kept(victim);
  std::string line;
  std::getline(kept, line);
  EXPECT_EQ(line, "precious");
}

TEST(HostileCli, ExitCodeContract) {
  TinyWorld world;
  const std::string bad = world.dir.file("not_hdf5.h5ad");
  std::ofstream(bad) << "plain text";
  fs::create_directory(world.dir.path() / "folder");
  // A MatrixMarket "pattern" matrix: valid, but not supported.
  const fs::path mtx = world.dir.path() / "pattern_mtx";
  fs::create_directory(mtx);
  std::ofstream(mtx / "matrix.mtx") << "%%MatrixMarket matrix coordinate pattern general\n2 2 1\n1 1\n";
  std::ofstream(mtx / "genes.tsv") << "ENSG00000198851\tCD3E\nENSG00000156738\tMS4A1\n";
  std::ofstream(mtx / "barcodes.tsv") << "AAAC-1\nAAAG-1\n";
  const std::string q = world.query;
  const std::vector<std::string> embed{"embed", "-i", q, "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("e.npy")};
  auto plus = [](std::vector<std::string> args, std::vector<std::string> more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string start;  ///< after "celltyper: error: "
  };
  const std::vector<Case> cases = {
      // 2: usage (CLI11 parse errors), one line.
      {{}, 2, "a command is required (commands: "},
      {{"inspct", q}, 2, "unknown command 'inspct' (commands: "},
      {{"genes"}, 2, "a command is required after 'genes'"},
      {{"genes", "embedd"}, 2, "unknown command 'embedd' of 'genes'"},
      {{"inspect", q, "--bogus"}, 2, "inspect: The following argument"},
      {{"annotate", "-i", q}, 2, "annotate needs either --model FILE"},
      {plus(embed, {"--threads", "-1"}), 2, "embed: --threads: "},
      {plus(embed, {"--threads", "100000"}), 2, "embed: --threads: "},
      {plus(embed, {"--threads", "many"}), 2, "embed: --threads: "},
      {plus(embed, {"--dims", "-3"}), 2, "embed: --dims: "},
      {plus(embed, {"--dims", "0"}), 2, "embed: --dims: "},
      {{"genes", "embed", "--dims", "2000", "-o", world.dir.file("g.h5")}, 2, "genes embed: --dims: 2000 is outside [1 - 1024]"},
      {plus(embed, {"--threads", "abc"}), 2, "embed: --threads: 'abc' is not an integer"},
      {plus(embed, {"--memory-limit", "1"}), 2, "embed: --memory-limit: '1' is outside [1M - 1024T]"},
      {plus(embed, {"--memory-limit", "99999999999999999999T"}), 2, "embed: --memory-limit: '99999999999999999999T' is above the largest byte count, 1024T"},
      {plus(embed, {"--memory-limit", "lots"}), 2, "embed: --memory-limit: 'lots' is not a byte count"},
      {{"inspect", q, "--max-cells", "-5"}, 2, "inspect: --max-cells: "},
      // 2: bad input files and arguments.
      {{"inspect", bad}, 2, bad + ": not an HDF5 file"},
      {{"inspect", world.dir.file("missing.h5ad")}, 2, world.dir.file("missing.h5ad") + ": no such file"},
      {world.annotate({"-m", bad, "-o", world.dir.file("a.h5ad")}), 2, bad + ": not a celltyper model"},
      {world.annotate({"-m", world.dir.file("missing.h5"), "-o", world.dir.file("a.h5ad")}), 2, world.dir.file("missing.h5") + ": no such file (cannot open the model)"},
      {world.annotate({"-o", world.dir.file("folder")}), 2, world.dir.file("folder") + ": the output path is a directory"},
      {world.annotate({"-o", q}), 2, q + ": the output is an input of this command"},
      {{"embed", "-i", test::fixture("hostile/var_range_index.h5ad"), "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("e.npy")},
       2, test::fixture("hostile/var_range_index.h5ad") + ":/var: var has no gene names"},
      // 4: a valid file using a feature celltyper does not support.
      {{"inspect", mtx.string(), "--no-genes"}, 4, (mtx / "matrix.mtx").string() + ": pattern/complex MatrixMarket"},
  };
  for (const auto& c : cases) expect_one_line(test::run_cli(c.args), c.code, c.start);
  // 3: the operating system could not read or write.
  expect_one_line(test::run_cli(plus({"embed", "-i", q, "-g", world.store, "--gene-table", world.table}, {"-o", world.dir.file("no/dir/e.npy")})),
                  3, world.dir.file("no/dir/e.npy") + ": cannot create");
  // --help shows the bounds.
  const auto help = test::run_cli({"embed", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("[0 - 1024]"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("[1M - 1024T]"), std::string::npos) << help.out;
  // Each command's own bounds: LSA dimensions up to 1024; 0 = all where the help says so.
  EXPECT_NE(test::run_cli({"genes", "embed", "--help"}).out.find("--dims INT:INT in [1 - 1024]"), std::string::npos);
  EXPECT_NE(test::run_cli({"genes", "combine", "--help"}).out.find("--dims INT:INT in [0 - 65536]"), std::string::npos);

  // 3: permission denied on the h5ad, the model, the gene store, an output directory.
  const std::string locked = world.dir.file("locked");
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);  // nobody: no write
  for (const auto& [source, name] : {std::pair{world.query, "q.h5ad"}, {world.model, "m.h5"}, {world.store, "s.h5"}}) {
    fs::copy_file(source, fs::path(locked) / name);
    fs::permissions(fs::path(locked) / name, fs::perms::owner_read);  // owner only
  }
  const std::string lq = locked + "/q.h5ad";
  const std::string lm = locked + "/m.h5";
  const std::string ls = locked + "/s.h5";
  const auto denied_h5ad = run_cli_as_nobody({"inspect", lq, "--no-genes"});
  if (denied_h5ad.exit_code == 126) GTEST_SKIP() << "cannot switch to user nobody";
  expect_one_line(denied_h5ad, 3, lq + ": permission denied (cannot read the h5ad file)");
  expect_one_line(run_cli_as_nobody({"annotate", "-m", lm, "-i", q, "--gene-table", world.table, "-o", "/dev/null"}), 3,
                  lm + ": permission denied (cannot read the model)");
  expect_one_line(run_cli_as_nobody({"embed", "-i", q, "-g", ls, "--gene-table", world.table, "-o", "/dev/null"}), 3,
                  ls + ": permission denied (cannot read the gene store)");
  fs::permissions(world.dir.path() / "folder", fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  expect_one_line(run_cli_as_nobody({"embed", "-i", q, "-g", world.store, "--gene-table", world.table, "-o", world.dir.file("folder/x.npy")}), 3,
                  world.dir.file("folder/x.npy") + ": cannot create: permission denied in");
}

}  // namespace
}  // namespace celltyper
