"""requests Sessions per API endpoint: timeout, bounded pool, keep-alive, TLS verification."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from .policy import ApiPolicy

log = logging.getLogger("reconciler.resilience")
T = TypeVar("T")


class PolicyAdapter(HTTPAdapter):
    """requests adapter applying the API's timeout (when the caller gives none), a bounded
    connection pool (``max_connections``; callers block for a free connection) and TCP
    keep-alive probes every ``keep_alive`` seconds."""

    def __init__(self, policy: ApiPolicy):
        self.policy = policy
        super().__init__(pool_connections=4, pool_maxsize=policy.max_connections, pool_block=True, max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        options = list(HTTPConnection.default_socket_options) + [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        idle = max(1, int(self.policy.keep_alive))
        for opt in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if hasattr(socket, opt):
                options.append((socket.IPPROTO_TCP, getattr(socket, opt), idle))
        pool_kwargs["socket_options"] = options
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if timeout is None:
            timeout = self.policy.timeout
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def make_session(policy: ApiPolicy, *, verify: bool | str | None = None, ca_cert: str | None = None,
                 skip_ssl_validation: bool = False, user_agent: str = "blacksmith-reconciler") -> requests.Session:
    """A requests Session for one API endpoint. TLS is verified against ``ca_cert`` (a PEM file
    path) or the system CAs; ``skip_ssl_validation`` turns it off (logged loudly). ``verify``
    (what the config's ``tls_verify()`` returns: True, False or a CA path) overrides both."""
    if verify is not None:
        skip_ssl_validation = verify is False
        ca_cert = verify if isinstance(verify, str) else None
    session = requests.Session()
    adapter = PolicyAdapter(policy)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    session.trust_env = False  # no proxy/netrc surprises inside Lambda
    if skip_ssl_validation:
        log.warning("%s: TLS certificate verification disabled (skip_ssl_validation)", policy.name)
        session.verify = False
    elif ca_cert:
        session.verify = ca_cert
    return session


def chunked(items: Iterable[T], size: int) -> Iterable[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
