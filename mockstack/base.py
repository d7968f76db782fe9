"""The HTTP plumbing every emulator shares: a threaded loopback server, fault injection,
a request log and the admin endpoint ``/__mockstack/...``.

An emulator is a subclass of :class:`Emulator` that turns a :class:`Request` into a
:class:`Response`; :class:`EmulatorServer` serves it (optionally over TLS) and applies the
faults before the emulator sees the request.
"""

from __future__ import annotations

import json
import math
import random
import socket
import ssl
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_PREFIX = "/__mockstack"


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoding left to the emulator
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    base_url: str  # scheme://host:port the client called (for absolute links/redirects)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})


def text_response(status: int, text: str, content_type: str = "text/plain",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(status, text.encode(), {"Content-Type": content_type, **(headers or {})})


@dataclass
class Faults:
    """Fault knobs. All probabilities are drawn from a seeded RNG, so a run is repeatable."""

    latency_s: float = 0.0  # fixed delay before answering
    jitter_s: float = 0.0  # plus uniform(0, jitter_s)
    error_rate: float = 0.0  # share of requests answered with one of error_codes
    error_codes: list[int] = field(default_factory=lambda: [500, 502, 503])
    rate_limit_rps: float = 0.0  # above this many requests in the last second: 429
    retry_after_s: int = 1  # Retry-After header on those 429s
    reset_rate: float = 0.0  # share of connections reset without an answer
    down: bool = False  # refuse connections (the socket is closed at once)
    seed: int = 0

    def update(self, **changes: Any) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault knob(s) {sorted(unknown)}; accepted: {sorted(known)}")
        for key, value in changes.items():  # all checked before any is applied
            _check_knob(key, value)
        for key, value in changes.items():
            setattr(self, key, value)


def _check_knob(key: str, value: Any) -> None:
    """A wrong type would only fail later, inside a request thread: refuse it here, by name."""
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if key in ("error_rate", "reset_rate"):
        if not number or not 0 <= value <= 1:
            raise ValueError(f"fault {key}={value!r}: accepted is a number from 0 to 1")
    elif key in ("latency_s", "jitter_s", "rate_limit_rps"):
        if not number or value < 0:
            raise ValueError(f"fault {key}={value!r}: accepted is a number >= 0")
    elif key in ("retry_after_s", "seed"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"fault {key}={value!r}: accepted is a whole number >= 0")
    elif key == "down":
        if not isinstance(value, bool):
            raise ValueError(f"fault down={value!r}: accepted is true or false")
    elif key == "error_codes" and (not isinstance(value, list) or not value or not all(
            isinstance(c, int) and not isinstance(c, bool) and 400 <= c <= 599 for c in value)):
        raise ValueError(f"fault error_codes={value!r}: accepted is a non-empty list of HTTP codes 400-599")


@dataclass
class LoggedRequest:
    api: str
    method: str
    path: str
    status: int  # 0 when the connection was reset or refused
    start: float
    end: float


class RequestLog:
    """Thread-safe log of every request an emulator saw, faults included."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, api: str | None = None, method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            items = list(self._entries)
        return [e for e in items if (api is None or e.api == api) and (method is None or e.method == method)]

    def count(self, api: str | None = None, method: str | None = None) -> int:
        return len(self.entries(api, method))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{api: {method: n}}`` over the whole log."""
        out: dict[str, dict[str, int]] = {}
        for e in self.entries():
            out.setdefault(e.api, {}).setdefault(e.method, 0)
            out[e.api][e.method] += 1
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Emulator(ABC):
    """Base of every emulated system. Subclasses set ``api`` and implement ``handle``."""

    api = "emulator"

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer one request (faults were already applied by the server)."""

    def fault_response(self, status: int, headers: dict[str, str]) -> Response | None:
        """The body an injected fault (``status`` 429/5xx) answers with; None = the generic one.

        Emulators override this to answer in their system's error shape (Vault ``{"errors": [...]}``,
        BOSH plain text ...); ``headers`` (e.g. ``Retry-After``) must be kept.
        """
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the RequestLog records
        pass

    def _serve(self) -> None:
        owner = self.server.owner
        start = time.time()
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if split.path.startswith(ADMIN_PREFIX):
            self._send(owner.admin(self.command, split.path, body))
            return
        status = 0
        try:
            decision = owner.apply_faults()
            if decision == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            response = decision if isinstance(decision, Response) else self._dispatch(split, body)
            status = response.status
        finally:
            # logged before the answer goes out, so a client that got its answer sees it counted
            owner.log.add(LoggedRequest(owner.emulator.api, self.command, split.path, status, start, time.time()))
        self._send(response)

    def _dispatch(self, split: Any, body: bytes) -> Response:
        owner = self.server.owner
        host = self.headers.get("Host") or f"{owner.host}:{owner.port}"
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=f"{owner.scheme}://{host}",
        )
        try:
            return owner.emulator.handle(request)
        except Exception as exc:  # an emulator bug must answer, not hang the client
            return text_response(500, f"emulator error: {type(exc).__name__}: {exc}")

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = dict(response.headers)
        headers.setdefault("Content-Length", str(len(response.body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_LIST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: EmulatorServer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return not self.owner.faults.down  # "down": accept, then close at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up or fails the TLS handshake is its business, not a server error
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """Serves one emulator on 127.0.0.1 (port 0 = a free port), optionally over TLS."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, faults: Faults | None = None,
                 log: RequestLog | None = None, public_host: str | None = None) -> None:
        self.emulator = emulator
        self.host = host
        self.public_host = public_host  # the name clients use when bound to 0.0.0.0 (e.g. for containers)
        self.faults = faults or Faults()
        self.log = log or RequestLog()
        self._rng = random.Random(self.faults.seed)
        self._fault_lock = threading.Lock()
        self._recent: list[float] = []
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        if ssl_context is not None:
            # handshake lazily in the request thread, so a slow or failing client (e.g. one that
            # rejects our certificate) never blocks the accept loop
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True,
                                                         do_handshake_on_connect=False)
        self.scheme = "https" if ssl_context is not None else "http"
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.public_host or self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        # a short poll interval: stop() returns in ~50 ms instead of 0.5 s (tests start many servers)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mockstack-{self.emulator.api}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_faults(self, **changes: Any) -> None:
        with self._fault_lock:
            self.faults.update(**changes)
            if "seed" in changes:
                self._rng = random.Random(self.faults.seed)

    def reset_faults(self) -> None:
        with self._fault_lock:
            self.faults = Faults(seed=self.faults.seed)
            self._rng = random.Random(self.faults.seed)

    def apply_faults(self) -> Response | str | None:
        """Decide this request's fate: ``None`` (serve it), ``"reset"`` or an error Response."""
        with self._fault_lock:
            f = self.faults
            delay = f.latency_s + (self._rng.uniform(0, f.jitter_s) if f.jitter_s else 0.0)
            reset = f.reset_rate and self._rng.random() < f.reset_rate
            error = None
            if f.error_rate and self._rng.random() < f.error_rate:
                error = self._rng.choice(f.error_codes)
            limited = False
            if f.rate_limit_rps:
                now = time.monotonic()
                self._recent = [t for t in self._recent if now - t < 1.0]
                limited = len(self._recent) >= f.rate_limit_rps
                if not limited:
                    self._recent.append(now)
        if delay:
            time.sleep(delay)
        if reset:
            return "reset"
        if limited:
            headers = {"Retry-After": str(self.faults.retry_after_s)}
            return self.emulator.fault_response(429, headers) or json_response(
                429, {"errors": [{"title": "CF-RateLimitExceeded", "code": 10013, "detail": "Rate Limit Exceeded"}]},
                headers=headers)
        if error:
            headers = {"Retry-After": str(self.faults.retry_after_s)} if error == 429 else {}
            return self.emulator.fault_response(error, headers) or text_response(error, f"injected fault {error}",
                                                                                 headers=headers)
        return None

    def admin(self, method: str, path: str, body: bytes) -> Response:
        """``GET|PUT /__mockstack/faults``, ``GET /__mockstack/requests``, ``POST /__mockstack/reset``."""
        name = path[len(ADMIN_PREFIX):].strip("/")
        if name == "faults" and method == "GET":
            return json_response(200, asdict(self.faults))
        if name == "faults" and method in ("PUT", "POST"):
            try:
                self.set_faults(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return json_response(400, {"error": str(exc)})
            return json_response(200, asdict(self.faults))
        if name == "requests" and method == "GET":
            return json_response(200, {"counts": self.log.counts(),
                                       "requests": [asdict(e) for e in self.log.entries()]})
        if name == "reset" and method == "POST":
            self.reset_faults()
            self.log.clear()
            return json_response(200, {"reset": True})
        return json_response(404, {"error": f"unknown admin call {method} {path}"})
