/// Test HTTP servers for remote reads (header-only):
///   NginxServer      Debian's nginx on 127.0.0.1:<free port>, started from a generated config in a
///                    temp dir (single process, no root paths), serving directories by URL
///                    prefix with Range support, plus /forbidden-deny/ (`deny all`) and
///                    /forbidden-return/ (`return 403`). Its access log records Range and
///                    Authorization headers.
///   ScriptedServer   a tiny socket server whose responses a test scripts (stall, truncate, 5xx).
#pragma once

#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace celltyper::test {

/// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

/// Whether something accepts connections on 127.0.0.1:port.
inline bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

inline std::string nginx_binary() {
  for (const char* candidate : {"/usr/sbin/nginx", "/usr/bin/nginx"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return "";
}

class NginxServer {
 public:
  /// `roots`: URL prefix (e.g. "data") -> directory served under /<prefix>/.
  explicit NginxServer(std::map<std::string, std::string> roots) : roots_(std::move(roots)), port_(free_port()) { start(); }
  ~NginxServer() { stop(); }
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  [[nodiscard]] bool running() const { return pid_ > 0; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// http://127.0.0.1:<port>/<prefix>/<relative>
  [[nodiscard]] std::string url(const std::string& prefix, const std::string& relative) const {
    return base_url() + "/" + prefix + "/" + relative;
  }
  /// The access log so far: one line per request, "<status> <bytes> range=<Range> auth=<Authorization> <request>".
  [[nodiscard]] std::string access_log() const {
    std::ifstream in(dir_.file("access.log"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  [[nodiscard]] std::string error_log() const {
    std::ifstream in(dir_.file("error.log"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  /// Kill the server at once (SIGKILL), as a crashed server would go.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  /// Start again on the same port (after kill_now / stop).
  void start() {
    const std::string binary = nginx_binary();
    if (binary.empty()) return;
    write_config();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      const std::string config = dir_.file("nginx.conf");
      const std::string prefix = dir_.path().string() + "/";
      const std::string error_log = dir_.file("error.log");
      ::execl(binary.c_str(), binary.c_str(), "-c", config.c_str(), "-p", prefix.c_str(), "-e", error_log.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (port_open(port_)) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: bad config or port taken
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    stop();
  }

 private:
  void write_config() {
    const std::string temp = dir_.path().string();
    std::ofstream conf(dir_.file("nginx.conf"));
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << temp << "/nginx.pid;\n"
         << "error_log " << temp << "/error.log warn;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n"
         << "  log_format ranges '$status $body_bytes_sent range=\"$http_range\" auth=\"$http_authorization\" $request';\n"
         << "  access_log " << temp << "/access.log ranges;\n"
         << "  client_body_temp_path " << temp << "/client_body;\n  proxy_temp_path " << temp << "/proxy;\n"
         << "  fastcgi_temp_path " << temp << "/fastcgi;\n  uwsgi_temp_path " << temp << "/uwsgi;\n  scgi_temp_path " << temp << "/scgi;\n"
         << "  default_type application/octet-stream;\n  sendfile on;\n  keepalive_requests 100000;\n"
         << "  server {\n    listen 127.0.0.1:" << port_ << ";\n";
    for (const auto& [prefix, directory] : roots_) {
      conf << "    location /" << prefix << "/ { alias " << std::filesystem::absolute(directory).lexically_normal().string() << "/; }\n";
    }
    conf << "    location /forbidden-deny/ { deny all; }\n"
         << "    location /forbidden-return/ { return 403; }\n"
         << "  }\n}\n";
  }

  std::map<std::string, std::string> roots_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A tiny HTTP/1.1 server on 127.0.0.1 whose answer to each request comes from `respond`
/// (request text, request number from 0) -> raw response bytes; std::nullopt = stall (hold the
/// connection open without answering until the server stops). One connection at a time.
class ScriptedServer {
 public:
  using Responder = std::function<std::optional<std::string>(const std::string& request, int number)>;

  explicit ScriptedServer(Responder respond) : respond_(std::move(respond)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int yes = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    ::listen(listener_, 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  [[nodiscard]] std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  [[nodiscard]] int requests() const { return count_.load(); }

  /// "bytes=A-B" from a request, as {A, B}; {-1, -1} when absent.
  static std::pair<long long, long long> range_of(const std::string& request) {
    const auto at = request.find("Range: bytes=");
    if (at == std::string::npos) return {-1, -1};
    long long first = -1;
    long long last = -1;
    std::sscanf(request.c_str() + at + 13, "%lld-%lld", &first, &last);
    return {first, last};
  }

  /// A correct 206 answer for `request` over `content`.
  static std::string partial_content(const std::string& request, const std::string& content) {
    auto [first, last] = range_of(request);
    if (first < 0) {
      first = 0;
      last = static_cast<long long>(content.size()) - 1;
    }
    last = std::min<long long>(last, static_cast<long long>(content.size()) - 1);
    const std::string body = content.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(last - first + 1));
    return "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
           std::to_string(content.size()) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

 private:
  void serve() {
    while (!stopping_) {
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      const auto response = respond_(request, count_++);
      if (response) {
        ::send(client, response->data(), response->size(), MSG_NOSIGNAL);
      } else {
        while (!stopping_) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // stall
      }
      ::close(client);
    }
  }

  Responder respond_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> count_{0};
  std::thread thread_;
};

}  // namespace celltyper::test
