#!/usr/bin/python3
"""A fake OpenAI-compatible server for celltyper's tests (no network, standard library only).

serve: listens on 127.0.0.1 on an ephemeral port, prints the port on stdout, and answers
  POST /v1/embeddings        deterministic vectors from a hash of each text (honours `dimensions`
                             and `encoding_format: "base64"`)
  POST /v1/chat/completions  "ENRICHED[<last user message>]"
  every request is logged as one JSON line to --log just before its response is sent:
  {"path", "status", "inputs": [texts], "fault"}.
  Faults (--faults, a JSON list used up one per API request, in arrival order):
    {"status": 429, "retry_after": 0.2}   an error status, optionally with Retry-After (seconds)
    {"status": 500} / {"status": 401}
    {"delay": 2.0}                        sleep, then answer normally (beyond a client timeout)
    {"truncate": true}                    a 200 whose body is cut in half (connection closed)
  --reject-substring S: HTTP 400 for any embeddings request with an input containing S.
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


class State:
    def __init__(self, options):
        self.options = options
        self.lock = threading.Lock()
        self.faults = list(json.loads(options.faults)) if options.faults else []
        self.log = open(options.log, "a", encoding="utf-8") if options.log else None

    def next_fault(self):
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def record(self, entry):
        if self.log is None:
            return
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    state = None

    def log_message(self, *args):  # quiet
        pass

    def send_json(self, entry, status, body, headers=None, truncate=False):
        # Logged before the answer leaves, so that a client that has its answer finds it in the log.
        entry["status"] = status
        self.state.record(entry)
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if truncate else payload)
        self.wfile.flush()
        self.close_connection = True

    def do_POST(self):
        state = self.state
        options = state.options
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        entry = {"path": self.path, "status": 0, "inputs": [], "fault": None}
        try:
            if options.delay > 0:
                time.sleep(options.delay)
            if options.api_key and self.headers.get("Authorization") != "Bearer " + options.api_key:
                self.send_json(entry, 401, error_body("Incorrect API key provided.", code="invalid_api_key"))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self.send_json(entry, 400, error_body("We could not parse the JSON body of your request."))
                return
            status, response, inputs = handle_api(self.path, body, options)
            entry["inputs"] = inputs
            fault = state.next_fault() if status == 200 else None
            entry["fault"] = fault
            if fault and "delay" in fault:
                time.sleep(fault["delay"])
            if fault and "status" in fault:
                headers = {}
                if "retry_after" in fault:
                    headers["Retry-After"] = str(fault["retry_after"])
                self.send_json(entry, fault["status"], error_body("fake fault", kind="server_error"), headers)
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
