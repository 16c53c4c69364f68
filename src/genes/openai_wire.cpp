// The OpenAI wire format: enrichment prompt, request bodies, response parsing, base64 vectors.
#include <bit>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/openai.hpp"

namespace celltyper::openai {

static_assert(std::endian::native == std::endian::little, "base64 embeddings assume a little-endian host");

namespace {

constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Value of a base64 character, -1 when not one.
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}

/// Decode base64 (padding optional); throws InputError on a bad character or length.
std::string decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) throw InputError(fmt::format("base64 text of length {} is truncated", text.size()));
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t accumulator = 0;
  int bits = 0;
  for (const char c : text) {
    const int value = base64_value(c);
    if (value < 0) throw InputError(fmt::format("'{}' is not a base64 character", c));
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<char>((accumulator >> bits) & 0xFFu));
    }
  }
  return bytes;
}

std::string describe_json(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

}  // namespace

std::string enrichment_prompt(std::string_view symbol, std::string_view name, std::string_view summary) {
  return fmt::format(fmt::runtime(kEnrichmentPromptTemplate), fmt::arg("symbol", symbol),
                     fmt::arg("name", name.empty() ? std::string_view("no full name") : name),
                     fmt::arg("summary", summary.empty() ? std::string_view("none available") : summary));
}

nlohmann::json embedding_request_body(const std::vector<std::string_view>& texts,
                                      const EmbeddingRequestOptions& options) {
  if (options.model.empty()) throw InputError("embedding model name is empty");
  if (options.dimensions < 0) throw InputError(fmt::format("embedding dimensions {} is negative", options.dimensions));
  if (texts.empty() || texts.size() > 2048)
    throw InputError(fmt::format("an embeddings request takes 1 to 2048 texts, not {}", texts.size()));
  nlohmann::json body = {{"model", options.model}};
  if (texts.size() == 1) {
    body["input"] = std::string(texts.front());
  } else {
    nlohmann::json input = nlohmann::json::array();
    for (const auto text : texts) input.push_back(std::string(text));
    body["input"] = std::move(input);
  }
  if (options.dimensions > 0) body["dimensions"] = options.dimensions;
  if (options.base64) body["encoding_format"] = "base64";
  return body;
}

nlohmann::json chat_request_body(std::string_view prompt, const ChatRequestOptions& options) {
  if (options.model.empty()) throw InputError("chat model name is empty");
  if (!(options.temperature >= 0.0 && options.temperature <= 2.0))
    throw InputError(fmt::format("chat temperature {} is outside [0, 2]", options.temperature));
  nlohmann::json messages = nlohmann::json::array();
  if (!options.system_message.empty()) messages.push_back({{"role", "system"}, {"content", options.system_message}});
  messages.push_back({{"role", "user"}, {"content", std::string(prompt)}});
  nlohmann::json body = {{"model", options.model}, {"messages", std::move(messages)}, {"temperature", options.temperature}};
  if (options.max_completion_tokens > 0) body["max_completion_tokens"] = options.max_completion_tokens;
  return body;
}

std::vector<float> parse_embedding_json(const nlohmann::json& value) {
  std::vector<float> vector;
  if (value.is_array()) {
    vector.reserve(value.size());
    for (const auto& number : value) {
      if (!number.is_number()) throw InputError(fmt::format("embedding holds a non-number {}", describe_json(number)));
      vector.push_back(static_cast<float>(number.get<double>()));
    }
  } else if (value.is_string()) {
    const std::string bytes = decode_base64(value.get_ref<const std::string&>());
    if (bytes.size() % sizeof(float) != 0)
      throw InputError(fmt::format("base64 embedding has {} bytes, not a multiple of 4", bytes.size()));
    vector.resize(bytes.size() / sizeof(float));
    std::memcpy(vector.data(), bytes.data(), bytes.size());
  } else {
    throw InputError(fmt::format("embedding is neither an array nor a base64 string: {}", describe_json(value)));
  }
  if (vector.empty()) throw InputError("embedding is empty");
  return vector;
}

std::string encode_embedding_base64(const std::vector<float>& vector) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(vector.data());
  const std::size_t n = vector.size() * sizeof(float);
  std::string text;
  text.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t chunk = (std::uint32_t{bytes[i]} << 16) | (i + 1 < n ? std::uint32_t{bytes[i + 1]} << 8 : 0u) |
                                (i + 2 < n ? std::uint32_t{bytes[i + 2]} : 0u);
    text.push_back(kBase64Alphabet[(chunk >> 18) & 63]);
    text.push_back(kBase64Alphabet[(chunk >> 12) & 63]);
    text.push_back(i + 1 < n ? kBase64Alphabet[(chunk >> 6) & 63] : '=');
    text.push_back(i + 2 < n ? kBase64Alphabet[chunk & 63] : '=');
  }
  return text;
}

std::vector<std::vector<float>> parse_embedding_response(const nlohmann::json& body, std::size_t n_inputs,
                                                         int dimensions) {
  if (!body.is_object() || !body.contains("data") || !body["data"].is_array())
    throw InputError(fmt::format("embeddings response has no \"data\" array: {}", describe_json(body)));
  const auto& data = body["data"];
  if (data.size() != n_inputs)
    throw InputError(fmt::format("embeddings response has {} vectors for {} inputs", data.size(), n_inputs));
  std::vector<std::vector<float>> vectors(n_inputs);
  std::size_t length = 0;
  for (std::size_t position = 0; position < data.size(); ++position) {
    const auto& item = data[position];
    if (!item.is_object() || !item.contains("embedding"))
      throw InputError(fmt::format("embeddings response item {} has no \"embedding\"", position));
    std::size_t index = position;
    if (item.contains("index")) {
      if (!item["index"].is_number_unsigned() || item["index"].get<std::size_t>() >= n_inputs)
        throw InputError(fmt::format("embeddings response item {} has index {}, expected 0..{}", position,
                                     describe_json(item["index"]), n_inputs - 1));
      index = item["index"].get<std::size_t>();
    }
    if (!vectors[index].empty()) throw InputError(fmt::format("embeddings response repeats index {}", index));
    vectors[index] = parse_embedding_json(item["embedding"]);
    if (dimensions > 0 && vectors[index].size() != static_cast<std::size_t>(dimensions))
      throw InputError(fmt::format("embeddings response vector {} has {} dimensions, expected {}", index,
                                   vectors[index].size(), dimensions));
    if (length == 0) length = vectors[index].size();
    if (vectors[index].size() != length)
      throw InputError(fmt::format("embeddings response vectors differ in length ({} and {})", length,
                                   vectors[index].size()));
  }
  return vectors;
}

std::string parse_chat_response(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("choices") || !body["choices"].is_array() || body["choices"].empty())
    throw InputError(fmt::format("chat response has no \"choices\": {}", describe_json(body)));
  const auto& choice = body["choices"][0];
  if (!choice.is_object() || !choice.contains("message") || !choice["message"].is_object())
    throw InputError(fmt::format("chat response choice has no \"message\": {}", describe_json(choice)));
  const auto& message = choice["message"];
  if (!message.contains("content") || !message["content"].is_string()) {
    if (message.contains("refusal") && message["refusal"].is_string())
      throw InputError(fmt::format("the model refused: {}", message["refusal"].get<std::string>()));
    throw InputError(fmt::format("chat response message has no text content: {}", describe_json(message)));
  }
  return message["content"].get<std::string>();
}

}  // namespace celltyper::openai
