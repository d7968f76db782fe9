"""The whole offline stack from one world: CF (+ its UAA), BOSH (+ its UAA in UAA mode) and
Vault, each a real HTTP(S) server on a free loopback port.

    with MockStack("world.json", tmp_path) as stack:
        ep = stack.endpoints()          # every URL, credential and CA path a client needs
        stack.servers["cf"].set_faults(error_rate=0.2)
        stack.request_counts()          # {"cf": {"GET": 12}, "uaa": {"POST": 1}, ...}

BOSH and its UAA always speak TLS with a CA made at start (``endpoints()["bosh"]["ca_cert"]``);
CF, its UAA and Vault speak plain HTTP unless ``tls=True``, then they share that CA.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from mockstack.base import EmulatorServer, Faults, LoggedRequest
from mockstack.bosh import BoshDirectorEmulator
from mockstack.cf import CloudControllerEmulator
from mockstack.openbao import OpenBaoVault
from mockstack.tls import DEFAULT_HOSTS, TLSMaterial, make_tls
from mockstack.uaa import UAAEmulator
from mockstack.vault import VaultEmulator
from mockstack.world import load_world, parts

# scopes of the generated CF client: a read-only reconciler that may read binding credentials
CF_CLIENT_SCOPES = ["cloud_controller.admin_read_only", "cloud_controller.read"]
BOSH_CLIENT_SCOPES = ["bosh.admin", "bosh.read"]


def default_auth(world_auth: dict[str, Any] | None = None) -> dict[str, Any]:
    """The world's ``auth`` with generated values for whatever it leaves out."""
    auth = dict(world_auth or {})
    auth.setdefault("cf_client", {"id": "reconciler", "secret": secrets.token_urlsafe(18)})
    auth.setdefault("cf_user", {"username": "admin", "password": secrets.token_urlsafe(18)})
    auth.setdefault("bosh_client", {"id": "reconciler", "secret": secrets.token_urlsafe(18)})
    auth.setdefault("bosh_basic", {"username": "admin", "password": secrets.token_urlsafe(18)})
    auth.setdefault("bosh_auth", "uaa")
    auth.setdefault("vault_token", "hvs." + secrets.token_urlsafe(24))
    auth.setdefault("vault_aws_role", "blacksmith-reconciler")
    return auth


class MockStack:
    """``MockStack(world, workdir)``: ``world`` is a path or a world dict (validated with
    :func:`mockstack.world.load_world`); ``workdir`` receives the TLS material and
    ``endpoints.json`` (a temporary directory when None).

    Knobs: ``expires_in`` (token lifetime of both UAAs, seconds), ``bosh_task_steps`` (polls
    before a BOSH task is done), ``cf_rate_limits`` (X-RateLimit-* headers), ``tls`` (CF, its
    UAA and Vault over TLS too), ``vault_kv_version``, ``host`` (bind address, default loopback) and
    ``public_host`` (the name put in every URL and the certificate, e.g. ``host.docker.internal``
    when Lambda containers of a LocalStack must reach the stack; bind ``host="0.0.0.0"`` then),
    ``vault_backend`` (``"openbao"``: a real ``bao server -dev`` instead of the emulator, behind
    the same recording front) and ``vault_policy`` (HCL: the endpoints then give a token that
    only this policy allows, e.g. ``deploy/vault-policy.hcl``).
    """

    def __init__(self, world: str | os.PathLike[str] | dict[str, Any], workdir: str | os.PathLike[str] | None = None,
                 *, expires_in: int = 43199, bosh_task_steps: int = 2, cf_rate_limits: dict[str, int] | None = None,
                 tls: bool = False, vault_kv_version: int = 2, host: str = "127.0.0.1",
                 public_host: str | None = None, vault_backend: str = "emulator",
                 vault_policy: str | None = None) -> None:
        if vault_backend not in ("emulator", "openbao"):
            raise ValueError(f"vault_backend {vault_backend!r}: accepted are 'emulator' and 'openbao'")
        if vault_policy is not None and vault_backend != "openbao":
            raise ValueError("vault_policy needs vault_backend='openbao' (the emulator has one root token)")
        self.world = load_world(world)
        self.host, self.public_host = host, public_host
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mockstack-"))
        self.auth = default_auth(self.world.get("auth"))
        self.expires_in = expires_in
        self.bosh_task_steps = bosh_task_steps
        self.cf_rate_limits = cf_rate_limits
        self.tls_everywhere = tls
        self.vault_kv_version = vault_kv_version
        self.vault_backend = vault_backend
        self.vault_policy = vault_policy
        self.vault_client_token: str | None = None  # the policy-limited token, when vault_policy is given
        self.servers: dict[str, EmulatorServer] = {}
        self.tls: TLSMaterial | None = None
        self.cf_uaa: UAAEmulator | None = None
        self.bosh_uaa: UAAEmulator | None = None
        self.cf: CloudControllerEmulator | None = None
        self.bosh: BoshDirectorEmulator | None = None
        self.vault: VaultEmulator | OpenBaoVault | None = None
        self.foundations: dict[str, tuple[str, str]] = {}  # name -> (CC server key, UAA server key)
        self.directors: dict[str, tuple[str, str]] = {}  # name -> (Director server key, its UAA's key)

    # -- life cycle -------------------------------------------------------------------
    def _serve(self, key: str, emulator: Any, secure: bool) -> EmulatorServer:
        context = self.tls.server_context() if secure and self.tls else None
        server = EmulatorServer(emulator, ssl_context=context, faults=Faults(), host=self.host,
                                public_host=self.public_host).start()
        self.servers[key] = server
        return server

    def start(self) -> MockStack:
        if self.servers:
            raise RuntimeError("MockStack already started")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        extra = tuple(h for h in (self.public_host,) if h)
        self.tls = make_tls(self.workdir / "tls", name="mockstack", hosts=DEFAULT_HOSTS + extra)
        a = self.auth
        cf_client, cf_user = a["cf_client"], a["cf_user"]
        # each foundation on its own port with its own UAA; the first keeps the keys "cf"/"uaa",
        # the others are "cf:<name>"/"uaa:<name>" (set_faults("cf:eu", down=True))
        for i, part in enumerate(parts(self.world, "cf")):
            suffix = "" if i == 0 else f":{part['name']}"
            uaa = UAAEmulator({cf_client["id"]: {"secret": cf_client["secret"], "authorities": CF_CLIENT_SCOPES}},
                              users={cf_user["username"]: cf_user["password"]}, expires_in=self.expires_in)
            uaa_server = self._serve("uaa" + suffix, uaa, self.tls_everywhere)
            uaa.set_issuer(uaa_server.url)
            cc = CloudControllerEmulator(part, uaa_url=uaa_server.url, authority=uaa.authority,
                                         rate_limits=self.cf_rate_limits)
            self._serve("cf" + suffix, cc, self.tls_everywhere)
            self.foundations[part["name"]] = ("cf" + suffix, "uaa" + suffix)
            if i == 0:
                self.cf_uaa, self.cf = uaa, cc

        basic = a["bosh_basic"]
        for i, part in enumerate(parts(self.world, "bosh")):
            suffix = "" if i == 0 else f":{part['name']}"
            bosh_kwargs: dict[str, Any] = {}
            bosh_uaa = None
            if a["bosh_auth"] == "uaa":
                client = a["bosh_client"]
                bosh_uaa = UAAEmulator({client["id"]: {"secret": client["secret"],
                                                       "authorities": BOSH_CLIENT_SCOPES}},
                                       expires_in=self.expires_in)
                bosh_uaa.api = "bosh_uaa"
                bosh_uaa_server = self._serve("bosh_uaa" + suffix, bosh_uaa, True)
                bosh_uaa.set_issuer(bosh_uaa_server.url)
                bosh_kwargs.update(uaa_url=bosh_uaa_server.url, authority=bosh_uaa.authority)
            director = BoshDirectorEmulator({k: v for k, v in part.items() if k != "foundations"},
                                            auth=a["bosh_auth"], basic=(basic["username"], basic["password"]),
                                            task_steps=self.bosh_task_steps, tls=self.tls, **bosh_kwargs)
            self._serve("bosh" + suffix, director, True)
            self.directors[part["name"]] = ("bosh" + suffix, "bosh_uaa" + suffix)
            if i == 0:
                self.bosh_uaa, self.bosh = bosh_uaa, director

        if self.vault_backend == "openbao":  # a real server behind the recording front (same log and faults)
            if a["vault_token"].startswith(("hvs.", "hvb.", "hvr.", "s.", "b.", "r.")):
                # a real server refuses a custom root token id with a token-type prefix
                a["vault_token"] = "root-" + a["vault_token"].split(".", 1)[1]
            self.vault = OpenBaoVault(self.world["vault"], token=a["vault_token"], kv_version=self.vault_kv_version,
                                      workdir=self.workdir / "openbao")
            if self.vault_policy is not None:
                self.vault_client_token = self.vault.token_with_policy("blacksmith-reconciler", self.vault_policy)
        else:
            self.vault = VaultEmulator(self.world["vault"], token=a["vault_token"],
                                       kv_version=self.vault_kv_version, aws_role=a.get("vault_aws_role"))
        self._serve("vault", self.vault, self.tls_everywhere)
        path = self.workdir / "endpoints.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds credentials
        with os.fdopen(fd, "w") as out:
            json.dump(self.endpoints(), out, indent=2)

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.servers.clear()
        if isinstance(self.vault, OpenBaoVault):
            self.vault.stop()

    def __enter__(self) -> MockStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what clients need ----------------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        if not self.servers:
            raise RuntimeError("MockStack not started")
        a, s = self.auth, self.servers
        ca = self.tls.ca_path if self.tls else None
        plain_ca = ca if self.tls_everywhere else None
        cfs = [{"name": name, "api_url": s[cc].url, "uaa_url": s[uaa].url,
                "login_url": s[uaa].url, "client_id": a["cf_client"]["id"],
                "client_secret": a["cf_client"]["secret"], "username": a["cf_user"]["username"],
                "password": a["cf_user"]["password"], "ca_cert": plain_ca}
               for name, (cc, uaa) in self.foundations.items()]
        serves = {p["name"]: p.get("foundations") for p in parts(self.world, "bosh")}
        directors = [{"name": name, "url": s[key].url, "auth": a["bosh_auth"],
                      "uaa_url": s[uaa].url if uaa in s else None, "client_id": a["bosh_client"]["id"],
                      "client_secret": a["bosh_client"]["secret"], "username": a["bosh_basic"]["username"],
                      "password": a["bosh_basic"]["password"], "ca_cert": ca,
                      **({"foundations": serves[name]} if serves.get(name) is not None else {})}
                     for name, (key, uaa) in self.directors.items()]
        return {
            "cf": cfs[0],
            "bosh": directors[0],
            "cf_foundations": cfs,
            "bosh_directors": directors,
            "vault": {"address": s["vault"].url, "token": self.vault_client_token or a["vault_token"],
                      "mount": "secret",
                      "kv_version": self.vault_kv_version, "aws_role": a.get("vault_aws_role"), "ca_cert": plain_ca},
            "admin": {key: f"{server.url}/__mockstack" for key, server in s.items()},
            "ca_cert": ca,
            "workdir": str(self.workdir),
        }

    # -- observation and control ------------------------------------------------------
    def set_faults(self, api: str, **knobs: Any) -> None:
        """``api`` is a key of :attr:`servers` (cf, uaa, bosh, bosh_uaa, vault)."""
        if api not in self.servers:
            raise KeyError(f"unknown api {api!r}; running: {', '.join(self.servers)}")
        self.servers[api].set_faults(**knobs)

    def reset(self) -> None:
        """Clear every fault and request log."""
        for server in self.servers.values():
            server.reset_faults()
            server.log.clear()

    def request_counts(self) -> dict[str, dict[str, int]]:
        """``{api: {method: n}}`` across every server."""
        out: dict[str, dict[str, int]] = {}
        for server in self.servers.values():
            for api, methods in server.log.counts().items():
                for method, n in methods.items():
                    out.setdefault(api, {}).setdefault(method, 0)
                    out[api][method] += n
        return out

    def requests(self) -> list[LoggedRequest]:
        """Every logged request of every server, in start-time order."""
        entries = [e for server in self.servers.values() for e in server.log.entries()]
        return sorted(entries, key=lambda e: e.start)
