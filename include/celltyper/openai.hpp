/// @file openai.hpp
/// Gene texts to gene embeddings through OpenAI-style web APIs, GenePT-style (Chen Y. & Zou J.,
/// "Simple and effective embedding model for single-cell biology built from ChatGPT", Nature
/// Biomedical Engineering 2024): every gene's text (NCBI summary, optionally enriched by a chat
/// model with the tissues, cell types, drugs and pathways associated with the gene) is embedded by
/// a text-embedding model (default `text-embedding-3-large`, 3072 dimensions; its Matryoshka
/// `dimensions` parameter truncates and renormalises server-side).
///
/// Two ways to reach a model:
/// - **Batch API** (half price, results within 24 h): `write_batch_requests` writes JSONL
///   request files within the Batch API limits plus a manifest; `upload_batch_file`,
///   `create_batch`, `retrieve_batch` and `download_file` talk to the API;
///   `parse_batch_output` maps the output and error files back to gene ids. A *batch job*
///   directory (`create_batch_job`, `submit_batch_job`, `collect_batch_job`) ties these together
///   over several runs and rounds until every item has a result.
/// - **Direct HTTP** to `https://api.openai.com/v1` or any OpenAI-compatible server:
///   `embed_texts` and `complete_texts`, with bounded concurrency, retries with exponential
///   backoff and full jitter, and a checkpoint file that makes every run resumable.
///
/// `gene_text_items`, `gene_store_from_embeddings` and `gene_enrichment_prompts` connect these
/// to gene texts and gene stores (`celltyper genes embed --backend openai|openai-batch`,
/// `celltyper genes enrich`).
///
/// Conventions:
/// - Items are (id, text) pairs; ids are caller-chosen gene ids (e.g. Entrez ids as strings),
///   unique within one call. Results are keyed by id.
/// - Embeddings are float32 vectors, one per id, all of the same length.
/// - A *results store* (also the direct client's checkpoint) is a JSONL file: a header line
///   `{"celltyper_results":1,"kind":"embedding"|"text","model":...,"dimensions":...}` then one
///   line per finished id, `{"id":...,"embedding":"<base64 float32 LE>"}` or
///   `{"id":...,"text":...}`. Lines are appended and fsynced, never rewritten; a truncated last
///   line (a crash mid-write) is ignored with a warning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <celltyper/gene_store.hpp>
#include <celltyper/gene_text.hpp>

namespace celltyper::openai {

/// (id, text) pairs: the input of every call in this header.
using IdAndText = std::vector<std::pair<std::string, std::string>>;

// ---- prompt ------------------------------------------------------------------------------

/// System message of enrichment requests.
inline constexpr std::string_view kEnrichmentSystemMessage =
    "You are an expert in human molecular and cell biology. You answer with specific, "
    "well-established facts only, in concise plain text, without introductions or closing remarks.";

/// User message template of enrichment requests; `{symbol}`, `{name}` and `{summary}` are filled
/// by `enrichment_prompt`.
inline constexpr std::string_view kEnrichmentPromptTemplate =
    "Gene: {symbol} ({name})\n"
    "Known summary: {summary}\n"
    "\n"
    "Describe what this gene is associated with, using these plain-text sections, each a short "
    "list of names separated by semicolons:\n"
    "Associated genes: interaction partners, complex members, regulators and direct targets.\n"
    "Tissues: tissues and organs where the gene is notably expressed or functionally important.\n"
    "Cell types: specific cell types (e.g. \"CD8-positive alpha-beta T cell\", \"alveolar type 2 "
    "cell\") that express it characteristically or use it as a marker.\n"
    "Drugs: drugs or drug classes that target the gene product or its pathway.\n"
    "Pathways and processes: signalling pathways and biological processes it takes part in.\n"
    "\n"
    "Be specific. Leave out generic statements that would fit any gene (\"involved in many "
    "cellular processes\", \"expressed in many tissues\"). If nothing specific is known for a "
    "section, write \"none known\" for it.";

/// The enrichment prompt for one gene: `kEnrichmentPromptTemplate` filled with its official
/// `symbol` (e.g. "CD3E"), full `name` and NCBI `summary` ("none available" when empty).
std::string enrichment_prompt(std::string_view symbol, std::string_view name, std::string_view summary);

// ---- request and response bodies (the wire format, shared by batch files and direct calls) --

/// What to ask an embedding model.
struct EmbeddingRequestOptions {
  std::string model = "text-embedding-3-large";  ///< model name sent as `model`
  /// Output dimensions sent as `dimensions` (Matryoshka truncation, text-embedding-3 models
  /// only); 0 = leave it out and get the model's full size (3072 for text-embedding-3-large).
  int dimensions = 0;
  /// Texts per request, 1..2048 (the API's limit on an `input` array).
  std::size_t inputs_per_request = 256;
  /// Characters of text per request at most (a request's tokens are capped by the API at
  /// 300,000; gene texts run at ~3-4 characters per token). A longer single text still gets a
  /// request of its own.
  std::size_t max_characters_per_request = 600'000;
  /// Ask for `encoding_format: "base64"` (exact float32, a third of the bytes). Responses in
  /// either format are always accepted.
  bool base64 = false;
};

/// What to ask a chat model (one request per gene).
struct ChatRequestOptions {
  std::string model = "gpt-4o-mini";                               ///< model name sent as `model`
  double temperature = 0.2;                                         ///< sampling temperature, 0..2
  std::string system_message = std::string(kEnrichmentSystemMessage);  ///< "" = no system message
  int max_completion_tokens = 0;  ///< sent as `max_completion_tokens` when > 0
};

/// Body of a POST /v1/embeddings request for `texts` (throws InputError on bad options).
nlohmann::json embedding_request_body(const std::vector<std::string_view>& texts,
                                      const EmbeddingRequestOptions& options);

/// Body of a POST /v1/chat/completions request whose user message is `prompt`.
nlohmann::json chat_request_body(std::string_view prompt, const ChatRequestOptions& options);

/// The vectors of an embeddings response body, in input order (by each item's `index`).
/// Checks that there are `n_inputs` of them, each index once, all of one length, equal to
/// `dimensions` when > 0. Throws InputError naming the problem.
std::vector<std::vector<float>> parse_embedding_response(const nlohmann::json& body, std::size_t n_inputs,
                                                         int dimensions);

/// The text of a chat completion response body (`choices[0].message.content`); throws
/// InputError when absent (e.g. a refusal).
std::string parse_chat_response(const nlohmann::json& body);

/// One embedding from its JSON form: an array of numbers, or a base64 string of little-endian
/// float32 (`encoding_format: "base64"`). Throws InputError when neither.
std::vector<float> parse_embedding_json(const nlohmann::json& value);

/// `vector` as base64 of little-endian float32 (the API's base64 layout, used by results stores).
std::string encode_embedding_base64(const std::vector<float>& vector);

// ---- results store (checkpoint) ------------------------------------------------------------

/// What a results store holds.
enum class ResultKind {
  kEmbedding,  ///< one float32 vector per id
  kText,       ///< one text per id (chat completions)
};

/// Contents of a results store read with `read_results_store`.
struct StoredResults {
  ResultKind kind = ResultKind::kEmbedding;
  std::string model;                                   ///< from the header
  int dimensions = 0;                                  ///< from the header (0 = model default)
  std::map<std::string, std::vector<float>> embeddings;  ///< kEmbedding stores
  std::map<std::string, std::string> texts;              ///< kText stores
  std::vector<std::string> warnings;                   ///< truncated last line, repeated ids
  [[nodiscard]] std::size_t size() const { return embeddings.size() + texts.size(); }
  [[nodiscard]] bool contains(const std::string& id) const { return embeddings.contains(id) || texts.contains(id); }
};

/// Read a results store (read-only; a truncated last line is ignored with a warning). Throws
/// IoError when unreadable, InputError naming file and line when malformed.
StoredResults read_results_store(const std::string& path);

/// An append-only results store open for writing: the checkpoint of `embed_texts` and
/// `complete_texts`, and where `parse_batch_output` can put batch results.
class ResultsStore {
 public:
  /// Open `path`, creating it (with its header) when absent. An existing store must have the
  /// same kind, model and dimensions (else InputError: results of different models never mix);
  /// its results are loaded; a truncated last line is cut off with a warning. The file is locked
  /// (flock) against a second writer (InputError when already locked).
  ResultsStore(std::string path, ResultKind kind, std::string model, int dimensions);
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  /// Append embeddings (kEmbedding stores), written in one write and fsynced before returning;
  /// on failure (disk full, ...) the file is cut back to what it was and IoError is thrown.
  /// Ids already stored are skipped. Vectors must have the store's length.
  void append_embeddings(const std::vector<std::pair<std::string, std::vector<float>>>& results);
  /// Append texts (kText stores), same guarantees as `append_embeddings`.
  void append_texts(const std::vector<std::pair<std::string, std::string>>& results);

  /// Everything stored so far (loaded plus appended).
  [[nodiscard]] const StoredResults& results() const { return results_; }
  /// Move everything stored so far out of this object (to avoid a copy); afterwards the object
  /// may only be destroyed.
  [[nodiscard]] StoredResults take_results() { return std::move(results_); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  void append_lines(const std::string& lines);
  std::string path_;
  int fd_ = -1;
  StoredResults results_;
};

// ---- Batch API files -------------------------------------------------------------------------

/// Endpoint of a batch.
enum class BatchEndpoint {
  kEmbeddings,       ///< /v1/embeddings
  kChatCompletions,  ///< /v1/chat/completions
};

/// Per-file limits of the Batch API (OpenAI, 2025). Lower them to get smaller files.
struct BatchLimits {
  std::size_t max_requests_per_file = 50'000;          ///< request lines per file
  std::size_t max_bytes_per_file = 200'000'000;        ///< bytes per file (200 MB)
  std::size_t max_embedding_inputs_per_file = 50'000;  ///< /v1/embeddings inputs summed over a file
};

/// Options of `write_batch_requests`.
struct BatchWriteOptions {
  BatchEndpoint endpoint = BatchEndpoint::kEmbeddings;
  EmbeddingRequestOptions embedding;  ///< used for kEmbeddings
  ChatRequestOptions chat;            ///< used for kChatCompletions
  BatchLimits limits;
  /// Results store (see `ResultsStore`) whose ids are left out, so that a batch can be redone
  /// for just the genes that failed; "" or an absent file = leave nothing out. Its model must
  /// match (InputError otherwise).
  std::string results_store;
  /// Files are named `<prefix>-00001.jsonl`, ... and `<prefix>-manifest.json`.
  std::string file_prefix = "batch";
  /// Put before every custom_id ("r2-" gives "r2-emb-000000", "r2-chat-<id>"), so that the
  /// request files of several rounds of one job never share a custom_id.
  std::string custom_id_prefix;
};

/// Outcome of `write_batch_requests`.
struct BatchWriteResult {
  std::vector<std::string> request_files;  ///< paths of the JSONL request files, in order
  std::string manifest_file;               ///< path of the manifest (custom_id -> ids)
  std::size_t n_requests = 0;              ///< request lines written
  std::size_t n_items = 0;                 ///< ids in those requests
  std::size_t n_skipped = 0;               ///< ids left out because the results store has them
};

/// Write Batch API request files for `items` into `directory` (created if needed).
///
/// Embeddings: texts grouped `embedding.inputs_per_request` per request, custom_id "emb-000000",
/// "emb-000001", ...; chat: one request per id, custom_id "chat-<id>" (both after
/// `custom_id_prefix`). Each line is
/// `{"custom_id","method":"POST","url","body"}`. Files are split so that none exceeds
/// `limits`; the manifest (JSON) records endpoint, model, dimensions, the files and, per
/// custom_id, the ordered ids of its inputs. Every file is written to a temporary name and
/// renamed into place. Throws InputError on empty or repeated ids, empty embedding texts,
/// a single request larger than `max_bytes_per_file`, or a results store of another model.
BatchWriteResult write_batch_requests(const IdAndText& items, const std::string& directory,
                                      const BatchWriteOptions& options = {});

/// Options of `parse_batch_output`.
struct BatchParseOptions {
  /// Manifest written by `write_batch_requests`; required for embeddings. Without one, chat
  /// custom_ids "chat-<id>" are decoded directly and missing ids cannot be reported.
  std::string manifest_file;
  /// When set, the results are also appended to this results store (created if absent).
  std::string results_store;
};

/// A request the batch could not do.
struct BatchFailure {
  std::string custom_id;
  std::vector<std::string> ids;  ///< ids of its inputs
  int status_code = 0;           ///< HTTP status of the response; 0 when the line has an error instead
  std::string code;              ///< error code, e.g. "batch_expired", "invalid_request_error"
  std::string message;           ///< error message
};

/// A line of an output file that could not be used.
struct MalformedLine {
  std::string file;
  std::size_t line = 0;  ///< 1-based
  std::string problem;
  [[nodiscard]] std::string to_string() const;  ///< "file:line: problem"
};

/// Outcome of `parse_batch_output`.
struct BatchParseResult {
  ResultKind kind = ResultKind::kEmbedding;
  std::map<std::string, std::vector<float>> embeddings;  ///< succeeded ids (embeddings batches)
  std::map<std::string, std::string> texts;              ///< succeeded ids (chat batches)
  std::vector<BatchFailure> failures;                    ///< status != 200 or an error object
  std::vector<std::string> missing;      ///< manifest ids with neither a result nor a failure
  std::vector<MalformedLine> malformed;  ///< unusable lines; the rest of the file is still read
  std::vector<std::string> warnings;     ///< repeated custom_ids, store warnings
  [[nodiscard]] std::size_t n_succeeded() const { return embeddings.size() + texts.size(); }
  /// A few human-readable lines: counts, then the first failures and malformed lines.
  [[nodiscard]] std::string summary() const;
};

/// Read Batch API output and error files (same line layout:
/// `{"id","custom_id","response":{"status_code","request_id","body"},"error":{"code","message"}}`)
/// and map every result back to its ids via custom_id and the manifest. A bad line is recorded
/// in `malformed` ("file:line: problem") and reading goes on. When a custom_id appears twice,
/// the first success wins. Throws IoError when a file cannot be read, InputError when the
/// manifest is malformed.
BatchParseResult parse_batch_output(const std::vector<std::string>& files, const BatchParseOptions& options = {});

// ---- direct HTTP client ---------------------------------------------------------------------

/// How to talk to the server.
struct HttpClientOptions {
  /// API root; requests go to `<base_url>/embeddings` and `<base_url>/chat/completions`.
  std::string base_url = "https://api.openai.com/v1";
  /// Bearer token; "" = the environment variable OPENAI_API_KEY. With neither, requests carry
  /// no Authorization header, which only a local server accepts (InputError for api.openai.com).
  std::string api_key;
  /// Requests in flight at most, >= 1. The first request goes alone, so that a bad key or URL
  /// costs one request.
  int max_concurrent_requests = 4;
  double request_timeout_seconds = 120.0;  ///< whole request, > 0; a timeout is retried
  double connect_timeout_seconds = 15.0;   ///< TCP + TLS connect, > 0
  /// Attempts per request, >= 1, over HTTP 408/409/429/5xx, timeouts, connection errors and
  /// unreadable responses; then IoError.
  int max_attempts = 6;
  /// Retry delay: uniform in [0, min(max_backoff, initial_backoff * 2^(attempt-1))] ("full
  /// jitter"); a Retry-After (or retry-after-ms) header is honoured instead, up to
  /// `max_retry_after_seconds`; a 429 pauses every request for that long.
  double initial_backoff_seconds = 1.0;
  double max_backoff_seconds = 60.0;
  double max_retry_after_seconds = 600.0;
  /// Results store used as checkpoint (see `ResultsStore`): each finished result is appended and
  /// fsynced before it counts as done; ids already there are never requested again. "" = none.
  std::string checkpoint_path;
  /// Called with (ids done, ids in total) at the start and after each finished request, on the
  /// calling thread.
  std::function<void(std::size_t done, std::size_t total)> on_progress;
};

/// Options of `embed_texts`.
struct EmbedTextsOptions {
  EmbeddingRequestOptions request;
  HttpClientOptions http;
};

/// Options of `complete_texts`.
struct CompleteTextsOptions {
  ChatRequestOptions request;
  HttpClientOptions http;
};

/// Outcome of `embed_texts`.
struct EmbedTextsResult {
  std::map<std::string, std::vector<float>> embeddings;  ///< one per input id
  std::size_t n_from_checkpoint = 0;  ///< ids found in the checkpoint, not requested
  std::size_t n_requests = 0;         ///< HTTP requests sent, retries included
  std::size_t n_retries = 0;          ///< of which retries
  std::vector<std::string> warnings;  ///< checkpoint warnings
};

/// Outcome of `complete_texts`.
struct CompleteTextsResult {
  std::map<std::string, std::string> texts;  ///< one per input id
  std::size_t n_from_checkpoint = 0;
  std::size_t n_requests = 0;
  std::size_t n_retries = 0;
  std::vector<std::string> warnings;  ///< checkpoint warnings, truncated completions
};

/// Embed every text of `items` by POST <base_url>/embeddings, `request.inputs_per_request`
/// texts per request, resumably (see `HttpClientOptions::checkpoint_path`).
///
/// Errors: HTTP 401/403 -> InputError "check your API key" at once, no retry; HTTP 400/413/422
/// on a request of several texts -> the request is split in halves until the culprit is alone;
/// texts rejected alone are collected and, once everything else is done, reported in one
/// InputError naming their ids and the server's message; other 4xx -> InputError; retries
/// exhausted -> IoError naming the ids; checkpoint write failure -> IoError (nothing stored is
/// lost). Throws InputError on empty or repeated ids, empty texts, bad options.
EmbedTextsResult embed_texts(const IdAndText& items, const EmbedTextsOptions& options = {});

/// Complete every prompt of `items` (one chat request each, e.g. from `enrichment_prompt`) by
/// POST <base_url>/chat/completions, resumably; errors as for `embed_texts`.
CompleteTextsResult complete_texts(const IdAndText& items, const CompleteTextsOptions& options = {});

// ---- Batch API over HTTP ----------------------------------------------------------------------
// The calls a batch needs (https://platform.openai.com/docs/guides/batch): upload the request file
// (POST /files, purpose "batch"), create the batch (POST /batches), poll it (GET /batches/{id})
// and download its output and error files (GET /files/{id}/content). They share
// `HttpClientOptions` with the direct client (base URL, key, timeouts, retries with backoff;
// HTTP 401/403 -> InputError "check your API key" at once).

/// A batch as the Batch API describes it (the fields celltyper uses).
struct BatchInfo {
  std::string id;
  /// validating, failed, in_progress, finalizing, completed, expired, cancelling or cancelled.
  std::string status;
  std::string endpoint;        ///< "/v1/embeddings" or "/v1/chat/completions"
  std::string input_file_id;
  std::string output_file_id;  ///< "" until the batch has one
  std::string error_file_id;   ///< "" until the batch has one
  std::size_t n_total = 0;      ///< request_counts.total
  std::size_t n_completed = 0;  ///< request_counts.completed
  std::size_t n_failed = 0;     ///< request_counts.failed
  std::string errors;  ///< validation errors of a failed batch, "line 3: message; ..." ("" when none)
  /// completed, failed, expired or cancelled: nothing about the batch will change any more.
  [[nodiscard]] bool finished() const;
  /// The Batch object's JSON -> BatchInfo; throws InputError when it has no string id or status.
  static BatchInfo from_json(const nlohmann::json& json);
};

/// Upload a request file for the Batch API; returns its file id. Throws IoError when the file
/// cannot be read or the upload keeps failing.
std::string upload_batch_file(const std::string& path, const HttpClientOptions& options);

/// Create a batch of the uploaded file `input_file_id` (completion window 24 h, `metadata` a JSON
/// object of strings or null). When an attempt fails in a way that leaves open whether the batch
/// was made (timeout, connection lost, 5xx), the recent batches are searched for one of this
/// input file before trying again, so that a file is never run (and paid for) twice.
BatchInfo create_batch(const std::string& input_file_id, BatchEndpoint endpoint, const nlohmann::json& metadata,
                       const HttpClientOptions& options);

/// The current state of batch `batch_id`.
BatchInfo retrieve_batch(const std::string& batch_id, const HttpClientOptions& options);

/// The newest batch made from `input_file_id` among the `max_batches` most recent batches of the
/// account (GET /batches, newest first), if any.
std::optional<BatchInfo> find_batch_for_input_file(const std::string& input_file_id, const HttpClientOptions& options,
                                                   std::size_t max_batches = 1000);

/// Download the content of file `file_id` to `path` (through `<path>.part`, renamed when complete;
/// a cut download is retried).
void download_file(const std::string& file_id, const std::string& path, const HttpClientOptions& options);

// ---- Batch jobs: a directory that carries one set of requests to the end ----------------------
// A job directory holds everything needed to finish a batch job in later runs, even on another
// machine:
//
//     job.json              endpoint, model, dimensions, request options, caller metadata, rounds
//     items.jsonl           {"celltyper_batch_items":1,...} then {"id","text"} per item
//     results.jsonl         results store (see ResultsStore) of everything collected so far
//     round-001/            the first round: batch-00001.jsonl ..., batch-manifest.json,
//                           state.json (per request file: input file id, batch id, status,
//                           output and error file ids; written by submit and collect),
//                           batch-00001.output.jsonl / .errors.jsonl (downloaded), or any
//                           other *.jsonl output or error file the user put there
//     round-002/ ...        later rounds: the ids a round left without a result (failed,
//                           expired, missing), custom_ids prefixed "r2-", ...
//
// Every file is written to a temporary name and renamed into place, so a crash at any point
// leaves a job that the next run continues.

/// What a job directory holds (job.json).
struct BatchJobInfo {
  std::string directory;
  BatchEndpoint endpoint = BatchEndpoint::kEmbeddings;
  std::string model;
  int dimensions = 0;                ///< embeddings: requested dimensions (0 = model default)
  std::size_t n_items = 0;           ///< items of the job
  nlohmann::json metadata;           ///< the caller's, as given to `create_batch_job`
  std::vector<std::string> rounds;   ///< round directories (names, oldest first)
  /// Path of the job's results store.
  [[nodiscard]] std::string results_path() const;
};

/// Create a job in `directory` (created if needed; InputError when it already holds a job) for
/// `items` with `options` (endpoint, request options, limits; `results_store`, `file_prefix` and
/// `custom_id_prefix` are set by the job), and write its first round of request files.
/// `metadata` (any JSON) is kept in job.json for the caller.
BatchJobInfo create_batch_job(const IdAndText& items, const std::string& directory, const BatchWriteOptions& options,
                              const nlohmann::json& metadata = nullptr);

/// Read job.json of `directory`; InputError when it is not a job directory.
BatchJobInfo open_batch_job(const std::string& directory);

/// The items of the job in `directory`, in their original order.
IdAndText read_batch_job_items(const std::string& directory);

/// Outcome of `submit_batch_job`.
struct BatchSubmitResult {
  std::size_t n_uploaded = 0;           ///< request files uploaded now
  std::size_t n_created = 0;            ///< batches created (or found already made) now
  std::size_t n_already_submitted = 0;  ///< request files that had a batch before this call
  std::size_t n_answered = 0;           ///< request files left alone: their output is already in the round
};

/// Upload and create a batch for every request file of every round that has none yet, recording
/// file and batch ids in the round's state.json after each step (a crash never makes a file run
/// twice: see `create_batch`). Files whose requests all have outputs in the round directory
/// (downloaded by hand) are left alone. `on_line` gets one progress line per step.
BatchSubmitResult submit_batch_job(const std::string& directory, const HttpClientOptions& options,
                                   const std::function<void(const std::string&)>& on_line = {});

/// Options of `collect_batch_job`.
struct BatchCollectOptions {
  HttpClientOptions http;  ///< server and retries for polling, downloading and submitting
  /// Poll the batches made by `submit_batch_job` and download their output and error files; false =
  /// only read the output files already in the round directories (no network).
  bool use_api = true;
  /// Submit the request files of a new round (and of any round not yet submitted).
  bool submit = false;
  /// Keep polling for up to this many seconds while batches run (0 = look once).
  double wait_seconds = 0;
  double poll_interval_seconds = 30;  ///< seconds between polls when waiting, > 0
  /// Rounds at most, >= 1: when every round is finished and some items still have no result, a
  /// new round is written for them unless the job has this many.
  std::size_t max_rounds = 4;
  std::function<void(const std::string&)> on_line;  ///< progress lines
};

/// Outcome of `collect_batch_job`.
struct BatchCollectResult {
  bool complete = false;      ///< every item has a result in the job's results store
  std::size_t n_items = 0;    ///< items of the job
  std::size_t n_done = 0;     ///< items with a result
  std::vector<std::string> pending;   ///< batches still running: "round-001/batch-00001.jsonl: batch_x in_progress (3/10)"
  std::vector<std::string> awaiting;  ///< request files neither submitted nor answered: "round-001/batch-00001.jsonl"
  std::vector<BatchFailure> failures;  ///< failed requests whose ids still have no result
  std::vector<std::string> missing;    ///< ids with no result, no failure and nothing pending
  std::vector<MalformedLine> malformed;     ///< unusable output lines
  std::vector<std::string> batch_problems;  ///< batches failed, expired or cancelled, with their errors
  std::string new_round;  ///< round written by this call for the ids without a result ("" = none)
  std::vector<std::string> warnings;
  /// Lines for a person: counts, then what is pending, awaiting, failed, missing.
  [[nodiscard]] std::string summary() const;
};

/// Bring a job forward: poll its batches and download finished outputs (`use_api`), parse every
/// round's output and error files into the results store, and, when no batch is pending or
/// awaiting and some items still have no result, write a new round for them (and submit it with
/// `submit`); with `wait_seconds`, repeat until complete, stuck or out of time.
BatchCollectResult collect_batch_job(const std::string& directory, const BatchCollectOptions& options = {});

// ---- genes: gene texts in, gene stores and enrichment texts out -------------------------------

/// (Entrez id as a decimal string, text) for every gene of `texts` with a non-empty text, in
/// order: the items to embed. With `table`, throws InputError naming up to 5 Entrez ids that are
/// not in it (before anything is sent).
IdAndText gene_text_items(const GeneTexts& texts, const GeneTable* table = nullptr);

/// Where the vectors of `gene_store_from_embeddings` came from.
struct EmbeddingSource {
  std::string backend = "openai";  ///< provenance backend: "openai" or "openai-batch"
  std::string model;               ///< embedding model, e.g. "text-embedding-3-large"
  nlohmann::json details = nlohmann::json::object();  ///< kept as provenance extra["openai"]
};

/// A gene store of the embeddings of `texts` (`embeddings` keyed as by `gene_text_items`, one
/// per gene with a text); symbols from the texts, Ensembl ids, gene-table hash and species from
/// `table` when given; provenance backend, model, dims, text recipe hash, creation time, with
/// the texts' provenance as extra["texts"]. Throws InputError when a gene with a text has no
/// vector or the vectors differ in length.
GeneStore gene_store_from_embeddings(const GeneTexts& texts, const std::map<std::string, std::vector<float>>& embeddings,
                                     const GeneTable* table, const EmbeddingSource& source);

/// (Entrez id as a decimal string, `enrichment_prompt`) for the genes `genes` (indices of
/// `table`), with each gene's summary from `summaries` when it has one there, else the table's.
IdAndText gene_enrichment_prompts(const GeneTable& table, const std::vector<std::int32_t>& genes,
                                  const GeneExtraTexts* summaries = nullptr);

}  // namespace celltyper::openai
