/// Test helpers around tests/genes/fake_openai_server.py: start it on 127.0.0.1, read its request
/// log, and compute the vector it gives a text.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_support.hpp"

extern char** environ;

namespace celltyper::test {

/// Path of the fake server script.
inline std::string fake_server_script() { return std::string(CELLTYPER_SOURCE_DIR) + "/tests/genes/fake_openai_server.py"; }

/// The fake server's vector for `text` (see fake_openai_server.py).
inline std::vector<float> fake_vector(const std::string& text, int dimensions) {
  std::uint64_t state = 0xCBF29CE484222325ull;
  for (const unsigned char byte : text) {
    state ^= byte;
    state *= 0x100000001B3ull;
  }
  std::vector<float> vector;
  for (int i = 0; i < dimensions; ++i) {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    vector.push_back(static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0));
  }
  return vector;
}

/// `vector` scaled to unit L2 norm (in double, as gene stores do).
inline std::vector<double> unit(const std::vector<float>& vector) {
  double norm = 0;
  for (const float value : vector) norm += static_cast<double>(value) * value;
  norm = std::sqrt(norm);
  std::vector<double> out;
  for (const float value : vector) out.push_back(value / norm);
  return out;
}

/// The fake server `serve`d on an ephemeral port; killed and reaped when the object dies.
class FakeServer {
 public:
  explicit FakeServer(const std::string& log_path, std::vector<std::string> extra_args = {}) {
    std::vector<std::string> argv = {system_python(), fake_server_script(), "serve", "--log", log_path, "--lifetime", "300"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    int out_pipe[2];
    if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    const int error = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    if (error != 0) {
      close(out_pipe[0]);
      throw std::runtime_error("cannot start the fake server");
    }
    std::string line;
    pollfd fd{out_pipe[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && poll(&fd, 1, 15000) > 0) {
      char buffer[64];
      const ssize_t n = read(out_pipe[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    close(out_pipe[0]);
    port_ = std::atoi(line.c_str());
    if (port_ <= 0) {
      stop();
      throw std::runtime_error("the fake server printed no port: " + line);
    }
  }
  ~FakeServer() { stop(); }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  [[nodiscard]] std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid_ = -1;
  int port_ = 0;
};

/// The server's log: one JSON object per request (and per request line of a batch).
inline std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> entries;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    auto entry = nlohmann::json::parse(line, nullptr, /* allow_exceptions = */ false);
    if (!entry.is_discarded()) entries.push_back(std::move(entry));  // the server may be mid-line
  }
  return entries;
}

/// Texts of successful requests (status 200 and no fault that kept the answer from the client),
/// with how often each was answered; batch request lines count too.
inline std::map<std::string, int> answered_texts(const std::vector<nlohmann::json>& log) {
  std::map<std::string, int> counts;
  for (const auto& entry : log) {
    if (entry["status"] != 200) continue;
    if (entry["fault"].is_object() && (entry["fault"].contains("delay") || entry["fault"].contains("truncate"))) continue;
    for (const auto& text : entry["inputs"]) ++counts[text.get<std::string>()];
  }
  return counts;
}

/// Every text of any request in the log.
inline std::set<std::string> requested_texts(const std::vector<nlohmann::json>& log) {
  std::set<std::string> texts;
  for (const auto& entry : log)
    for (const auto& text : entry["inputs"]) texts.insert(text.get<std::string>());
  return texts;
}

/// How many log entries have this method and path.
inline int count_requests(const std::vector<nlohmann::json>& log, const std::string& method, const std::string& path) {
  int n = 0;
  for (const auto& entry : log)
    if (entry.value("method", "POST") == method && entry["path"] == path) ++n;
  return n;
}

}  // namespace celltyper::test
