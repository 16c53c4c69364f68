#include "support/test_support.hpp"

#include <celltyper/gene_store.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <filesystem>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>

extern char** environ;

namespace celltyper::test {

std::string fixture(const std::string& relative) { return std::string(CELLTYPER_TEST_DATA_DIR) + "/" + relative; }

std::string shared_data(const std::string& relative) {
  const std::filesystem::path path = std::filesystem::path(CELLTYPER_SHARED_DATA_DIR) / relative;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return {};
  return std::filesystem::weakly_canonical(path).string();
}

std::string random_gene_store(const TempDir& dir, int dims, unsigned seed, std::size_t n_genes) {
  const GeneTable table = load_gene_table(shared_data("gene-annotations/human_genes.tsv"));
  std::vector<std::int64_t> entrez;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> matrix;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  for (const auto& gene : table.genes()) {
    if (n_genes > 0 && entrez.size() == n_genes) break;
    entrez.push_back(gene.entrez_id);
    symbols.push_back(gene.symbol);
    ensembl.push_back(gene.ensembl_ids.empty() ? "" : gene.ensembl_ids.front());
    for (int d = 0; d < dims; ++d) matrix.push_back(normal(rng));
  }
  GeneStoreProvenance provenance;
  provenance.backend = "test-random";
  provenance.dims = dims;
  const std::string path = dir.file(fmt::format("random_store_d{}_s{}_n{}.h5", dims, seed, n_genes));
  GeneStore(entrez, symbols, ensembl, matrix, dims, provenance).save(path);
  return path;
}

CommandResult run_program(const std::vector<std::string>& argv) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
  posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult result;
  if (spawn_error != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    result.err = std::string("cannot start ") + argv[0] + ": " + std::strerror(spawn_error);
    return result;
  }
  std::array<pollfd, 2> fds{{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_streams = 2;
  std::array<char, 65536> buffer{};
  while (open_streams > 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(fds[i].fd, buffer.data(), buffer.size());
      if (n > 0) {
        sinks[i]->append(buffer.data(), static_cast<std::size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_streams;
      }
    }
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.peak_rss_kb = usage.ru_maxrss;
  return result;
}

std::string cli_path() {
  const char* other = std::getenv("CELLTYPER_TEST_CLI");
  return other != nullptr && *other != '\0' ? std::string(other) : std::string(CELLTYPER_CLI_PATH);
}

GeneTable numbered_gene_table(int n, std::int64_t first_entrez, const std::string& prefix) {
  std::vector<Gene> genes;
  for (int g = 0; g < n; ++g) {
    Gene gene;
    gene.entrez_id = first_entrez + g;
    gene.symbol = prefix + std::to_string(g + 1);
    genes.push_back(std::move(gene));
  }
  return GeneTable(std::move(genes), "test genes");
}

CommandResult run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv{cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv);
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device device;
  path_ = std::filesystem::temp_directory_path() /
          ("celltyper-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(device() % 100000));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> csv_labels(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> labels;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string name;
    std::string label;
    std::getline(fields, name, ',');
    std::getline(fields, label, ',');
    labels.push_back(label);
  }
  return labels;
}

std::vector<std::string> temporaries_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp-") != std::string::npos) names.push_back(name);
  }
  return names;
}

int spawn_cli(const std::vector<std::string>& args, const std::string& tmpdir) {
  std::vector<std::string> argv = {cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> pointers;
  for (auto& arg : argv) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!tmpdir.empty() && std::strncmp(*entry, "TMPDIR=", 7) == 0) continue;
    environment.emplace_back(*entry);
  }
  if (!tmpdir.empty()) environment.push_back("TMPDIR=" + tmpdir);
  std::vector<char*> env;
  for (auto& entry : environment) env.push_back(entry.data());
  env.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, pointers[0], &actions, nullptr, pointers.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

std::vector<std::vector<double>> dense_x(const Dataset& dataset) {
  const auto reader = dataset.open_matrix("X");
  CsrBlockF64 block;
  reader->read_rows(0, reader->n_rows(), block);
  std::vector<std::vector<double>> out(static_cast<std::size_t>(block.n_rows), std::vector<double>(static_cast<std::size_t>(block.n_cols)));
  for (std::int64_t r = 0; r < block.n_rows; ++r) {
    for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      out[static_cast<std::size_t>(r)][static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] = block.values[static_cast<std::size_t>(k)];
    }
  }
  return out;
}

}  // namespace celltyper::test
