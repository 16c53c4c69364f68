#include <celltyper/communicator.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <stdexcept>

namespace celltyper {

void SingleProcessCommunicator::send(const std::string& bytes, int destination) {
  if (destination != 0) throw std::logic_error(fmt::format("send to rank {} in a single process", destination));
  mailbox_.push_back(bytes);
}

std::string SingleProcessCommunicator::receive(int source) {
  if (source != 0 || mailbox_.empty()) throw std::logic_error(fmt::format("receive from rank {} in a single process", source));
  std::string bytes = std::move(mailbox_.front());
  mailbox_.erase(mailbox_.begin());
  return bytes;
}

std::vector<std::size_t> contiguous_shares(const std::vector<std::int64_t>& weights, int parts) {
  assert(parts >= 1);
  std::int64_t total = 0;
  for (const auto weight : weights) total += weight;
  std::vector<std::size_t> bounds(static_cast<std::size_t>(parts) + 1, weights.size());
  bounds[0] = 0;
  // Share of item i: floor(midpoint * parts / total), non-decreasing in i.
  std::int64_t before = 0;
  std::size_t next_part = 1;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double midpoint = static_cast<double>(before) + 0.5 * static_cast<double>(weights[i]);
    const auto part = total > 0 ? static_cast<std::size_t>(midpoint * parts / static_cast<double>(total))
                                : static_cast<std::size_t>(i * static_cast<std::size_t>(parts) / std::max<std::size_t>(1, weights.size()));
    while (next_part <= std::min(part, static_cast<std::size_t>(parts) - 1)) bounds[next_part++] = i;
    before += weights[i];
  }
  return bounds;
}

std::vector<std::string> gather_to_root(Communicator& communicator, std::string mine) {
  std::vector<std::string> parts;
  if (!communicator.is_root()) {
    communicator.send(mine, 0);
    return parts;
  }
  parts.resize(static_cast<std::size_t>(communicator.size()));
  parts[0] = std::move(mine);
  for (int rank = 1; rank < communicator.size(); ++rank) parts[static_cast<std::size_t>(rank)] = communicator.receive(rank);
  return parts;
}

}  // namespace celltyper
