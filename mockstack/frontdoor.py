"""A loopback HTTP front for a Lambda Function URL.

moto stores Function URL configs but serves nothing, so this turns each HTTP request into
the event AWS sends (payload format 2.0) and maps the function's answer back to HTTP. The
function is any callable ``invoke(event) -> dict`` (an in-process handler, or the engine's
Lambda invoke), so the API is exercised exactly as a deployed Function URL would be.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_plus, urlsplit

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def function_url_event(method: str, raw_path: str, raw_query: str = "", headers: dict[str, str] | None = None,
                       body: bytes = b"", *, source_ip: str = "127.0.0.1", domain: str = "localhost",
                       account_id: str = "123456789012") -> dict[str, Any]:
    """The Lambda Function URL event (payload 2.0) for one HTTP request."""
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in (headers or {}).items():
        if key.lower() == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        lowered[key.lower()] = f"{lowered[key.lower()]},{value}" if key.lower() in lowered else value
    content_type = lowered.get("content-type", "")
    textual = not body or content_type.startswith(TEXT_TYPES)
    if textual and body:
        try:
            body.decode()
        except UnicodeDecodeError:  # not text whatever its content type says: pass it base64, do not crash
            textual = False
    query: dict[str, str] = {}
    for part in filter(None, raw_query.split("&")):
        key, _, value = part.partition("=")

        key, value = unquote_plus(key), unquote_plus(value)
        query[key] = f"{query[key]},{value}" if key in query else value  # AWS joins repeats with commas
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": account_id,
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": lowered.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not textual,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body.decode() if textual else base64.b64encode(body).decode()
    return event


def http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Map a function's return value to (status, headers, body) the way Function URLs do."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # a bare value is returned as JSON with status 200
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(str(v) for v in values)
    return int(result["statusCode"]), headers, raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.require_sigv4 and not signed_for_lambda(self.headers.get("Authorization") or ""):
            self._answer(403, {"content-type": "application/json"}, json.dumps({"Message": "Forbidden"}).encode())
            return
        event = function_url_event(self.command, split.path or "/", split.query, dict(self.headers.items()), body,
                                   source_ip=self.client_address[0], domain=self.server.domain)
        try:
            status, headers, payload = http_response(self.server.invoke(event))
        except Exception as exc:  # a failed invocation is a 502 from the URL, as in AWS
            status, headers = 502, {"content-type": "application/json"}
            payload = json.dumps({"Message": f"function error: {type(exc).__name__}"}).encode()
        self._answer(status, headers, payload)

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        headers["content-length"] = str(len(payload))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


def signed_for_lambda(authorization: str) -> bool:
    """An ``Authorization`` header of a SigV4 signature scoped to service ``lambda`` (what a
    Function URL with AuthType AWS_IAM demands; the signature itself is not recomputed here)."""
    return authorization.startswith("AWS4-HMAC-SHA256 Credential=") and "/lambda/aws4_request" in authorization \
        and "Signature=" in authorization


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    invoke: Callable[[dict[str, Any]], Any]
    domain: str
    require_sigv4: bool


class FunctionUrlFront:
    """Serves ``invoke`` on http://127.0.0.1:<port> as a Function URL would; ``require_sigv4``:
    only SigV4-signed requests (service ``lambda``) are let through."""

    def __init__(self, invoke: Callable[[dict[str, Any]], Any], *, host: str = "127.0.0.1", port: int = 0,
                 domain: str = "reconciler-api.lambda-url.us-east-1.on.aws", require_sigv4: bool = False) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.invoke = invoke
        self._httpd.require_sigv4 = require_sigv4  # 403 for an unsigned request, as AWS_IAM answers
        self._httpd.domain = domain
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FunctionUrlFront:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="function-url-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FunctionUrlFront:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
