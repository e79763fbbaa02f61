"""A misbehaving FHIR server for tests: a real HTTP socket server on 127.0.0.1 (a random free port), in
a thread, scripted per test, that stops itself after ``lifetime`` seconds and at fixture teardown.

    with FaultServer(lifetime=20) as server:
        server.route("GET", "/fhir/metadata", json_body(capability()))
        server.route("GET", "/fhir/Patient", endless_next(server))
        FhirClient(server.base).search("Patient").all()

What it can do (each a ``Behaviour``: a function of the request handler that writes the answer):
``json_body`` (any JSON, any status), ``raw_body`` (any bytes), ``endless_next`` (a new next link on
every page), ``looping_next`` (page 2 links back to page 1), ``drip`` (one byte every ``interval``
seconds, the headers too if asked), ``huge_body`` (a chunked body of ``size`` bytes, streamed),
``deep_json`` (JSON nested ``depth`` levels), ``transaction_echo`` (a transaction-response with one
entry less than sent, or any other change). Unrouted requests get a 404 OperationOutcome.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Behaviour = Callable[["FaultHandler"], None]


@dataclass(frozen=True)
class Seen:
    """One request the server received: method, path, query, body."""

    method: str
    path: str
    query: str
    body: bytes


class FaultHandler(BaseHTTPRequestHandler):
    """Routes each request to the behaviour scripted for (method, path)."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen = Seen(self.command, parts.path, parts.query, body)
        self.server.owner.requests.append(self.seen)
        behaviour = self.server.owner.routes.get((self.command, parts.path))
        try:
            if behaviour is None:
                json_body({"resourceType": "OperationOutcome", "issue": []}, status=404)(self)
            else:
                behaviour(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: that is what most tests want

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def send_json(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    @property
    def stopping(self) -> threading.Event:
        return self.server.owner.stopped


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (what the tests provoke) is no error; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultServer:
    """The server; ``base`` is its FHIR base URL (``http://127.0.0.1:<port>/fhir``)."""

    def __init__(self, lifetime: float = 30.0) -> None:
        self.routes: dict[tuple[str, str], Behaviour] = {}
        self.requests: list[Seen] = []
        self.dripped = 0  # bytes a `drip` behaviour has sent so far
        self.stopped = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), FaultHandler)
        self._httpd.owner = self
        host, port = self._httpd.server_address[:2]
        self.origin = f"http://{host!s}:{port}"
        self.base = f"{self.origin}/fhir"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def route(self, method: str, path: str, behaviour: Behaviour) -> None:
        self.routes[(method, path)] = behaviour

    def start(self) -> FaultServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- behaviours ----------------------------------------------------------------------------------


def json_body(value: Any, *, status: int = 200) -> Behaviour:
    """Answer ``value`` as JSON with ``status``."""
    payload = json.dumps(value).encode()
    return lambda handler: handler.send_json(status, payload)


def raw_body(payload: bytes, *, status: int = 200) -> Behaviour:
    """Answer these bytes as they are (not necessarily JSON)."""
    return lambda handler: handler.send_json(status, payload)


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _page(handler: FaultHandler, base: str, number: int, next_number: int) -> None:
    resource = {"resourceType": "Patient", "id": f"p{number}"}
    link = f"{base}?_getpages=endless&_getpagesoffset={next_number}"
    handler.send_json(200, json.dumps(searchset([resource], link)).encode())


def _offset(handler: FaultHandler) -> int:
    for pair in handler.seen.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "_getpagesoffset" and value.isdigit():
            return int(value)
    return 0


def endless_next(base: str) -> Behaviour:
    """Every page links to a new one (``_getpagesoffset`` counts up): the chain never ends.
    Route it on the search path and on the base path (where the links point)."""
    return lambda handler: _page(handler, base, _offset(handler), _offset(handler) + 1)


def looping_next(base: str) -> Behaviour:
    """Page 0 links to page 1, page 1 back to page 0 (an exact repeat of an earlier link)."""

    def answer(handler: FaultHandler) -> None:
        number = _offset(handler)
        _page(handler, base, number, 1 if number == 0 else 0)

    return answer


def drip(
    payload: bytes, *, interval: float = 2.0, headers_too: bool = False, status: int = 200
) -> Behaviour:
    """Send ``payload`` one byte every ``interval`` seconds (after the headers, or the headers too)."""

    def answer(handler: FaultHandler) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        if not headers_too:
            handler.wfile.write(head)
            handler.wfile.flush()
            head = b""
        for byte in head + payload:
            if handler.stopping.wait(interval):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            handler.server.owner.dripped += 1

    return answer


def huge_body(size: int, *, announce: bool = False, chunk: int = 64 * 1024) -> Behaviour:
    """A body of ``size`` bytes (a JSON string in a Bundle), streamed in chunks; with ``announce``
    its Content-Length is sent, else it is chunked (the client learns the size only by reading)."""

    def answer(handler: FaultHandler) -> None:
        head = b'{"resourceType":"Bundle","type":"searchset","id":"'
        filler = size - len(head) - 2
        handler.send_response(200)
        handler.send_header("Content-Type", "application/fhir+json")
        if announce:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(data: bytes) -> None:
            if announce:
                handler.wfile.write(data)
            else:
                handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        send(head)
        sent = 0
        while sent < filler and not handler.stopping.is_set():
            piece = min(chunk, filler - sent)
            send(b"x" * piece)
            sent += piece
        send(b'"}')
        if not announce:
            handler.wfile.write(b"0\r\n\r\n")

    return answer


def deep_json(depth: int, *, with_decimal: bool = False) -> Behaviour:
    """A Bundle whose first entry holds an extension nested ``depth`` levels (``with_decimal`` adds a
    number the exact-decimal parser must read, the path that recursed)."""
    inner = '{"valueDecimal":1.50}' if with_decimal else '{"url":"x"}'
    deep = '{"extension":[' * depth + inner + "]}" * depth
    payload = (
        '{"resourceType":"Bundle","type":"searchset","entry":[{"resource":'
        '{"resourceType":"Patient","id":"a","extension":[' + deep + "]}}]}"
    ).encode()
    return raw_body(payload)


def transaction_answer(
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda entries: entries,
) -> Behaviour:
    """Answer a transaction as a server that commits it would (201 Created, Type/id locations), with
    its entries passed through ``edit`` first (drop one, change a location...)."""

    def answer(handler: FaultHandler) -> None:
        sent = json.loads(handler.seen.body)
        entries = []
        for entry in sent.get("entry", []):
            resource = entry["resource"]
            location = f"{resource['resourceType']}/{resource.get('id', 'new')}/_history/1"
            entries.append({"response": {"status": "201 Created", "location": location}})
        bundle = {
            "resourceType": "Bundle",
            "type": f"{sent.get('type')}-response",
            "entry": edit(entries),
        }
        handler.send_json(200, json.dumps(bundle).encode())

    return answer


def capability(version: str = "4.0.1") -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "fhirVersion": version,
        "kind": "instance",
        "format": ["json"],
        "date": time.strftime("%Y-%m-%d"),
    }
