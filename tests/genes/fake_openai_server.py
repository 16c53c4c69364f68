#!/usr/bin/python3
"""A fake OpenAI-compatible server for celltyper's tests (no network, standard library only).

serve: listens on 127.0.0.1 on an ephemeral port, prints the port on stdout, and answers
  POST /v1/embeddings        deterministic vectors from a hash of each text (honours `dimensions`
                             and `encoding_format: "base64"`)
  POST /v1/chat/completions  "ENRICHED[<last user message>]"
  and the Batch API (files and batches kept in memory):
  POST /v1/files             multipart/form-data with `purpose` ("batch") and `file`
  GET  /v1/files/{id}/content
  POST /v1/batches           {"input_file_id", "endpoint", "completion_window": "24h", "metadata"}:
                             the input file is validated as the Batch API does (one JSON object per
                             line with exactly custom_id / method POST / url = endpoint / body,
                             unique custom_ids, at most 50,000 requests, 200 MB and, for
                             /v1/embeddings, 50,000 inputs); a file that fails gets status
                             "failed" with `errors`. Otherwise every request is answered at once
                             (output and error files, lines in reverse order) and the batch is
                             "in_progress" for --batch-polls retrievals, then "completed".
  GET  /v1/batches/{id}, GET /v1/batches?limit=N&after=ID (newest first)
  every request is logged as one JSON line to --log just before its response is sent:
  {"path", "method", "status", "inputs": [texts], "fault"}; each request line of a batch is
  logged too, with path "batch:/v1/embeddings" (or "batch:/v1/chat/completions").
  Faults (--faults, a JSON list used up one per API request, in arrival order):
    {"status": 429, "retry_after": 0.2}   an error status, optionally with Retry-After (seconds)
    {"status": 500} / {"status": 401}
    {"status": 500, "after": true}        do the request (e.g. create the batch), then answer 500
    {"delay": 2.0}                        sleep, then answer normally (beyond a client timeout)
    {"truncate": true}                    a 200 whose body is cut in half (connection closed)
    "path": "/v1/batches"                 (in any fault) only requests whose path starts so
  --reject-substring S: HTTP 400 for any embeddings request with an input containing S.
  --batch-expire "[3, 7]": request lines with these numbers (counted over all batches of the
  server, from 1) expire (error file, code batch_expired).
  --delay S: every API request sleeps S seconds first.
  Exits when its parent process dies or after --lifetime seconds.

batch: turns a Batch API request file into output and error files, as the Batch API would.

The vector of a text: h = FNV-1a 64 of its UTF-8 bytes; a splitmix64 stream seeded with h gives
z_1, z_2, ...; component i = (z_i >> 11) * 2^-53 * 2 - 1, as float32. tests/genes/openai_*_test.cpp
computes the same.
"""

import argparse
import base64
import http.server
import json
import os
import struct
import sys
import threading
import time
import urllib.parse

MASK = (1 << 64) - 1
DEFAULT_DIMENSIONS = 32


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK
    return h


def fake_vector(text, dimensions):
    state = fnv1a64(text.encode("utf-8"))
    values = []
    for _ in range(dimensions):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        values.append((z >> 11) * (2.0 ** -53) * 2.0 - 1.0)
    return values


def error_body(message, kind="invalid_request_error", code=None):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def handle_api(path, body, options):
    """(status, response body, inputs) for one API request."""
    if path == "/v1/embeddings":
        if not isinstance(body, dict) or "model" not in body or "input" not in body:
            return 400, error_body("'model' and 'input' are required"), []
        inputs = body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048 or \
                not all(isinstance(text, str) and text for text in inputs):
            return 400, error_body("'input' must be a non-empty string or an array of 1 to 2048 non-empty strings"), []
        if options.reject_substring and any(options.reject_substring in text for text in inputs):
            return 400, error_body("This model's maximum context length is 8192 tokens (fake)."), inputs
        dimensions = body.get("dimensions", options.default_dimensions)
        if not isinstance(dimensions, int) or dimensions < 1:
            return 400, error_body("'dimensions' must be a positive integer"), inputs
        data = []
        for index, text in enumerate(inputs):
            vector = fake_vector(text, dimensions)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack("<%df" % len(vector), *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        data.reverse()  # clients must use "index", not the order
        return 200, {"object": "list", "data": data, "model": body["model"],
                     "usage": {"prompt_tokens": 1, "total_tokens": 1}}, inputs
    if path == "/v1/chat/completions":
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or "model" not in body:
            return 400, error_body("'model' and 'messages' are required"), []
        prompt = messages[-1].get("content", "")
        return 200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "ENRICHED[" + prompt + "]"}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}, [prompt]
    return 404, error_body("Unknown endpoint %s" % path), []


BATCH_ENDPOINTS = ("/v1/embeddings", "/v1/chat/completions")
MAX_BATCH_REQUESTS = 50000
MAX_BATCH_BYTES = 200 * 1000 * 1000
MAX_BATCH_EMBEDDING_INPUTS = 50000


def validate_batch_input(content, endpoint):
    """Problems of a batch input file, as the Batch API reports them: [{"code", "message", "line"}]."""
    problems = []
    if len(content) > MAX_BATCH_BYTES:
        return [{"code": "file_too_large", "message": "The input file exceeds 200 MB.", "line": None}]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [{"code": "invalid_json_line", "message": "The file is not UTF-8.", "line": None}]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return [{"code": "empty_file", "message": "The input file has no requests.", "line": None}]
    if len(lines) > MAX_BATCH_REQUESTS:
        problems.append({"code": "too_many_requests", "message": "More than 50,000 requests.", "line": None})
    custom_ids = set()
    inputs = 0
    for number, line in enumerate(lines, start=1):
        def problem(code, message):
            problems.append({"code": code, "message": message, "line": number})
        try:
            request = json.loads(line)
        except ValueError:
            problem("invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(request, dict) or set(request) != {"custom_id", "method", "url", "body"}:
            problem("invalid_request", "Each line needs exactly custom_id, method, url and body.")
            continue
        if not isinstance(request["custom_id"], str) or not request["custom_id"]:
            problem("invalid_request", "custom_id must be a non-empty string.")
        elif request["custom_id"] in custom_ids:
            problem("duplicate_custom_id", "The custom_id %s is not unique." % request["custom_id"])
        custom_ids.add(request["custom_id"])
        if request["method"] != "POST":
            problem("invalid_method", "Only POST is supported.")
        if request["url"] != endpoint:
            problem("mismatched_url", "The url %s does not match the batch endpoint %s." % (request["url"], endpoint))
        if not isinstance(request["body"], dict):
            problem("invalid_request", "body must be a JSON object.")
        elif endpoint == "/v1/embeddings":
            value = request["body"].get("input")
            inputs += 1 if isinstance(value, str) else len(value) if isinstance(value, list) else 0
    if endpoint == "/v1/embeddings" and inputs > MAX_BATCH_EMBEDDING_INPUTS:
        problems.append({"code": "too_many_inputs", "message": "More than 50,000 embedding inputs in one batch.",
                         "line": None})
    return problems


class State:
    def __init__(self, options):
        self.options = options
        self.lock = threading.Lock()
        self.faults = list(json.loads(options.faults)) if options.faults else []
        self.log = open(options.log, "a", encoding="utf-8") if options.log else None
        self.files = {}    # id -> {"filename", "purpose", "content": bytes}
        self.batches = []  # in creation order: dicts (the API's batch object) plus "_polls_left"
        self.batch_lines = 0  # request lines answered by batches so far
        self.expire = set(json.loads(options.batch_expire)) if options.batch_expire else set()
        self.counter = 0

    def new_id(self, prefix):
        with self.lock:
            self.counter += 1
            return "%s-fake%06d" % (prefix, self.counter)

    def next_fault(self, path):
        with self.lock:
            for index, fault in enumerate(self.faults):
                if path.startswith(fault.get("path", "")):
                    return self.faults.pop(index)
            return None

    def add_file(self, filename, purpose, content):
        file_id = self.new_id("file")
        with self.lock:
            self.files[file_id] = {"filename": filename, "purpose": purpose, "content": content,
                                   "created_at": int(time.time())}
        return file_id

    def file_object(self, file_id):
        entry = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(entry["content"]), "created_at": entry["created_at"],
                "filename": entry["filename"], "purpose": entry["purpose"]}

    def run_batch(self, batch, content):
        """Answer every request line of a validated batch input file."""
        outputs, errors = [], []
        for line in content.decode("utf-8").splitlines():
            request = json.loads(line)
            with self.lock:
                self.batch_lines += 1
                number = self.batch_lines
            entry = {"id": "batch_req_%06d" % number, "custom_id": request["custom_id"]}
            if number in self.expire:
                entry["response"] = None
                entry["error"] = {"code": "batch_expired",
                                  "message": "This request could not be executed before the completion window expired."}
                errors.append(entry)
                self.record({"path": "batch:" + request["url"], "method": "POST", "status": 0, "inputs": [],
                             "fault": {"expired": True}})
                continue
            status, body, inputs = handle_api(request["url"], request["body"], self.options)
            entry["response"] = {"status_code": status, "request_id": "req_%06d" % number, "body": body}
            entry["error"] = None
            (outputs if status == 200 else errors).append(entry)
            self.record({"path": "batch:" + request["url"], "method": "POST", "status": status, "inputs": inputs,
                         "fault": None})
        outputs.reverse()  # clients must match by custom_id, not by order
        errors.reverse()
        encode = lambda entries: "".join(json.dumps(entry) + "\n" for entry in entries).encode("utf-8")
        # Revealed when the batch completes.
        if outputs:
            batch["_output_file_id"] = self.add_file("batch_output.jsonl", "batch_output", encode(outputs))
        if errors:
            batch["_error_file_id"] = self.add_file("batch_errors.jsonl", "batch_output", encode(errors))
        batch["request_counts"] = {"total": len(outputs) + len(errors), "completed": len(outputs),
                                   "failed": len(errors)}

    def create_batch(self, body):
        """(status, response) of POST /v1/batches."""
        if not isinstance(body, dict):
            return 400, error_body("The body must be a JSON object.")
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if file_id not in self.files or self.files[file_id]["purpose"] != "batch":
            return 400, error_body("No batch input file with id %s." % file_id)
        if endpoint not in BATCH_ENDPOINTS:
            return 400, error_body("Unsupported endpoint %s." % endpoint)
        if body.get("completion_window") != "24h":
            return 400, error_body("completion_window must be 24h.")
        now = int(time.time())
        batch = {"id": self.new_id("batch"), "object": "batch", "endpoint": endpoint, "errors": None,
                 "input_file_id": file_id, "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86400, "completed_at": None, "failed_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "metadata": body.get("metadata")}
        content = self.files[file_id]["content"]
        problems = validate_batch_input(content, endpoint)
        if problems:
            batch["status"] = "failed"
            batch["failed_at"] = now
            batch["errors"] = {"object": "list", "data": [dict(problem, param=None) for problem in problems]}
        else:
            self.run_batch(batch, content)
            batch["status"] = "in_progress"
            batch["in_progress_at"] = now
        batch["_polls_left"] = self.options.batch_polls
        if batch["status"] == "in_progress" and self.options.batch_polls == 0:
            complete(batch)
        with self.lock:
            self.batches.append(batch)
        return 200, public(batch)

    def retrieve_batch(self, batch_id):
        for batch in self.batches:
            if batch["id"] == batch_id:
                with self.lock:
                    if batch["status"] == "in_progress":
                        if batch["_polls_left"] > 0:
                            batch["_polls_left"] -= 1
                        else:
                            complete(batch)
                return 200, public(batch)
        return 404, error_body("No batch with id %s." % batch_id)

    def list_batches(self, query):
        limit = int(query.get("limit", ["20"])[0])
        after = query.get("after", [None])[0]
        newest_first = list(reversed(self.batches))
        if after is not None:
            ids = [batch["id"] for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        page = newest_first[:limit]
        return 200, {"object": "list", "data": [public(batch) for batch in page],
                     "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
                     "has_more": len(newest_first) > limit}

    def record(self, entry):
        if self.log is None:
            return
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()


def complete(batch):
    batch["status"] = "completed"
    batch["completed_at"] = int(time.time())
    batch["output_file_id"] = batch.get("_output_file_id")
    batch["error_file_id"] = batch.get("_error_file_id")


def public(batch):
    return {key: value for key, value in batch.items() if not key.startswith("_")}


def parse_multipart(content_type, raw):
    """{name: (filename or None, bytes)} of a multipart/form-data body."""
    boundary = None
    for part in content_type.split(";"):
        part = part.strip()
        if part.startswith("boundary="):
            boundary = part[len("boundary="):].strip('"')
    if not boundary:
        raise ValueError("no multipart boundary")
    fields = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for chunk in raw.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, value = chunk.partition(b"\r\n\r\n")
        if value.endswith(b"\r\n"):
            value = value[:-2]
        name = filename = None
        for header in head.decode("latin-1").split("\r\n"):
            if header.lower().startswith("content-disposition:"):
                for item in header.split(";")[1:]:
                    key, _, quoted = item.strip().partition("=")
                    if key == "name":
                        name = quoted.strip('"')
                    elif key == "filename":
                        filename = quoted.strip('"')
        if name is not None:
            fields[name] = (filename, value)
    return fields


class Handler(http.server.BaseHTTPRequestHandler):
    state = None

    def log_message(self, *args):  # quiet
        pass

    def send_json(self, entry, status, body, headers=None, truncate=False, raw=None):
        # Logged before the answer leaves, so that a client that has its answer finds it in the log.
        entry["status"] = status
        self.state.record(entry)
        payload = raw if raw is not None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if truncate else payload)
        self.wfile.flush()
        self.close_connection = True

    def answer_fault(self, entry, fault):
        """Apply the delay of a fault; answer its error status. True when the answer is sent."""
        entry["fault"] = fault
        if fault and "delay" in fault:
            time.sleep(fault["delay"])
        if fault and "status" in fault and not fault.get("after"):
            self.send_fault(entry, fault)
            return True
        return False

    def send_fault(self, entry, fault):
        headers = {}
        if "retry_after" in fault:
            headers["Retry-After"] = str(fault["retry_after"])
        self.send_json(entry, fault["status"], error_body("fake fault", kind="server_error"), headers)

    def authorised(self, entry):
        options = self.state.options
        if options.delay > 0:
            time.sleep(options.delay)
        if options.api_key and self.headers.get("Authorization") != "Bearer " + options.api_key:
            self.send_json(entry, 401, error_body("Incorrect API key provided.", code="invalid_api_key"))
            return False
        return True

    def do_GET(self):
        state = self.state
        url = urllib.parse.urlsplit(self.path)
        entry = {"path": url.path, "method": "GET", "status": 0, "inputs": [], "fault": None}
        try:
            if not self.authorised(entry):
                return
            fault = state.next_fault(url.path)
            if self.answer_fault(entry, fault):
                return
            parts = url.path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["v1", "files"] and parts[3] == "content":
                if parts[2] not in state.files:
                    self.send_json(entry, 404, error_body("No file with id %s." % parts[2]))
                    return
                self.send_json(entry, 200, None, raw=state.files[parts[2]]["content"],
                               truncate=bool(fault and fault.get("truncate")))
                return
            if len(parts) == 3 and parts[:2] == ["v1", "batches"]:
                status, body = state.retrieve_batch(parts[2])
            elif parts == ["v1", "batches"]:
                status, body = state.list_batches(urllib.parse.parse_qs(url.query))
            else:
                status, body = 404, error_body("Unknown endpoint %s" % url.path)
            if fault and fault.get("after"):
                self.send_fault(entry, fault)
                return
            self.send_json(entry, status, body, truncate=bool(fault and fault.get("truncate")))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        state = self.state
        options = state.options
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        entry = {"path": self.path, "method": "POST", "status": 0, "inputs": [], "fault": None}
        try:
            if not self.authorised(entry):
                return
            if self.path == "/v1/files":
                fault = state.next_fault(self.path)
                if self.answer_fault(entry, fault):
                    return
                try:
                    fields = parse_multipart(self.headers.get("Content-Type", ""), raw)
                except ValueError as error:
                    self.send_json(entry, 400, error_body(str(error)))
                    return
                if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
                    self.send_json(entry, 400, error_body("'file' and purpose=batch are required"))
                    return
                file_id = state.add_file(fields["file"][0] or "upload.jsonl", "batch", fields["file"][1])
                if fault and fault.get("after"):
                    self.send_fault(entry, fault)
                    return
                self.send_json(entry, 200, state.file_object(file_id))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self.send_json(entry, 400, error_body("We could not parse the JSON body of your request."))
                return
            if self.path == "/v1/batches":
                fault = state.next_fault(self.path)
                if self.answer_fault(entry, fault):
                    return
                status, response = state.create_batch(body)
                if fault and fault.get("after"):
                    self.send_fault(entry, fault)
                    return
                self.send_json(entry, status, response)
                return
            status, response, inputs = handle_api(self.path, body, options)
            entry["inputs"] = inputs
            fault = state.next_fault(self.path) if status == 200 else None
            entry["fault"] = fault
            if fault and "delay" in fault:
                time.sleep(fault["delay"])
            if fault and "status" in fault:
                self.send_fault(entry, fault)
                return
            self.send_json(entry, status, response, truncate=bool(fault and fault.get("truncate")))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)


def serve(options):
    Handler.state = State(options)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    parent = os.getppid()
    started = time.time()

    def watchdog():
        while True:
            time.sleep(0.2)
            if os.getppid() != parent or time.time() - started > options.lifetime:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


def batch(options):
    """Answer every line of a Batch API request file; every --expire-every-th request expires."""
    with open(options.input, encoding="utf-8") as requests, \
            open(options.output, "w", encoding="utf-8") as output, \
            open(options.errors, "w", encoding="utf-8") as errors:
        for number, line in enumerate(requests, start=1):
            request = json.loads(line)
            entry = {"id": "batch_req_%06d" % number, "custom_id": request["custom_id"]}
            if options.expire_every and number % options.expire_every == 0:
                entry["response"] = None
                entry["error"] = {"code": "batch_expired",
                                  "message": "This request could not be executed before the completion window expired."}
                errors.write(json.dumps(entry) + "\n")
                continue
            status, body, _ = handle_api(request["url"], request["body"], options)
            entry["response"] = {"status_code": status, "request_id": "req_%06d" % number, "body": body}
            entry["error"] = None
            (output if status == 200 else errors).write(json.dumps(entry) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--api-key", default="")
    serve_parser.add_argument("--log", default="")
    serve_parser.add_argument("--faults", default="")
    serve_parser.add_argument("--delay", type=float, default=0.0)
    serve_parser.add_argument("--lifetime", type=float, default=300.0)
    serve_parser.add_argument("--batch-polls", type=int, default=0)
    serve_parser.add_argument("--batch-expire", default="")
    batch_parser = commands.add_parser("batch")
    batch_parser.add_argument("input")
    batch_parser.add_argument("--output", required=True)
    batch_parser.add_argument("--errors", required=True)
    batch_parser.add_argument("--expire-every", type=int, default=0)
    for sub in (serve_parser, batch_parser):
        sub.add_argument("--reject-substring", default="")
        sub.add_argument("--default-dimensions", type=int, default=DEFAULT_DIMENSIONS)
    options = parser.parse_args()
    if options.command == "serve":
        serve(options)
    else:
        batch(options)


if __name__ == "__main__":
    sys.exit(main())
