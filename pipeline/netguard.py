"""Address checks for fetching: public vs private addresses, checked on every hop at connect time.

A feed configured on a local address is the user's choice and allowed. Once a fetch has talked to a
public address, every later connection of that fetch (redirect hops) must also go to a public
address, or it is refused (RELIABILITY H5/H6). The check runs on the address actually dialled,
after our own DNS resolution, so DNS rebinding cannot slip a private address in between a check
and the connect.

The connect-time check lives in a network backend handed to httpcore. httpx 0.28 has no public
parameter for that, so `GuardedTransport` replaces the connection pool of an
`httpx.AsyncHTTPTransport` (its `_pool` attribute); tests in tests/pipeline/test_netguard.py
fail if a future httpx changes this.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import httpcore
import httpx

from pipeline.errors import FetchError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Classifier = Callable[[IPAddress], bool]
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
REDIRECT_REFUSED = "redirect to a private address refused"


class AddressRefusedError(FetchError):
    """A connection was refused by the address policy before any byte was sent."""


def unmap(ip: IPAddress) -> IPAddress:
    """Return the IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address, else `ip`.

    `ipaddress` does not call `::ffff:127.0.0.1` loopback (RELIABILITY facts).
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public_address(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses.

    `is_global` is False for loopback, private, link-local (cloud metadata 169.254.169.254),
    CGNAT 100.64/10, unspecified and reserved ranges; multicast is excluded explicitly.
    Callers pass the unmapped address (see `unmap`).
    """
    return ip.is_global and not ip.is_multicast


def resolve_host(host: str, port: int) -> list[str]:
    """Resolve `host` with the system resolver; addresses in the resolver's order, no duplicates.

    Raises:
        OSError (socket.gaierror) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_ip(host: str) -> IPAddress | None:
    """Return the address when `host` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(slots=True)
class AddressPolicy:
    """Per-fetch state of the address rule: has this fetch talked to a public address yet?"""

    is_public: Classifier
    resolve: Resolver
    # Lookups run here, not in asyncio's default executor, which asyncio.run waits for: a hung
    # resolver must not hold the whole cycle past its fetches' deadlines. None: the default.
    executor: Executor | None = None
    seen_public: bool | None = None  # None until the first address of the fetch is known

    def check(self, addresses: Iterable[IPAddress]) -> None:
        """Allow `addresses` for the next connection, or raise AddressRefusedError.

        The first connection of a fetch (the configured URL) may be private: the user chose it.
        After a public address, any non-public one is refused; a mixed answer counts as private.
        """
        public = all(self.is_public(unmap(ip)) for ip in addresses)
        if self.seen_public is None:
            self.seen_public = public
        elif self.seen_public and not public:
            raise AddressRefusedError(REDIRECT_REFUSED)
        elif public:
            self.seen_public = True

    async def lookup(self, host: str, port: int) -> list[IPAddress]:
        """Resolve `host` (an IP literal is returned as is) with the injected resolver.

        Raises:
            httpcore.ConnectError when the name does not resolve.
        """
        literal = parse_ip(host)
        if literal is not None:
            return [literal]
        try:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(self.executor, self.resolve, host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host}: {exc.strerror}") from None
        addresses = [ip for ip in map(parse_ip, found) if ip is not None]
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve host {host}: no addresses")
        return addresses

    async def precheck(self, url: httpx.URL, origin: httpx.URL) -> None:
        """Check a redirect target before requesting it (clear message, works with any transport).

        `origin` is the first URL of the fetch: when no connection has been checked yet (an
        injected transport), its addresses decide whether the fetch started public.

        Raises:
            AddressRefusedError: the target is private after a public address.
            FetchError: a name does not resolve.
        """
        try:
            if self.seen_public is None:
                self.check(await self.lookup(origin.host, _port(origin)))
            self.check(await self.lookup(url.host, _port(url)))
        except httpcore.ConnectError as exc:
            raise FetchError(f"connection failed: {exc}") from None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself, checks the addresses with the policy, then dials the checked IP."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.lookup(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        self._policy.check(addresses)
        return await self._dial(addresses, port, timeout, local_address, socket_options)

    async def _dial(
        self,
        addresses: list[IPAddress],
        port: int,
        connect_timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, connect_timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = httpcore.ConnectError(_root_cause(exc))
            except httpcore.ConnectTimeout as exc:
                error = exc
        assert error is not None  # lookup never returns an empty list
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefusedError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _root_cause(exc: BaseException) -> str:
    """The system's words for why a connect failed ("Connection refused"), not anyio's summary."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(exc)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every new connection passes `policy` (one per fetch).

    No proxy: environment proxies are ignored (the client uses `trust_env=False`), since a proxy
    would dial the destination itself, out of reach of the address checks.
    """

    def __init__(self, policy: AddressPolicy, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=4,
            max_keepalive_connections=2,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedBackend(policy),
        )
