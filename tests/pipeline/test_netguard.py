"""pipeline.netguard: which addresses are public, and the per-fetch address rule."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl

import httpcore
import pytest

from pipeline.netguard import (
    REDIRECT_REFUSED,
    AddressPolicy,
    AddressRefusedError,
    GuardedBackend,
    GuardedTransport,
    is_public_address,
    parse_ip,
    resolve_host,
    unmap,
)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT: ipaddress does not call it private
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(unmap(ipaddress.ip_address(address))) is public


def test_unmap_returns_the_embedded_ipv4() -> None:
    assert unmap(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address("10.0.0.1")
    assert unmap(ipaddress.ip_address("2001:db8::1")) == ipaddress.ip_address("2001:db8::1")


def test_parse_ip_accepts_brackets_and_rejects_names() -> None:
    assert parse_ip("[::1]") == ipaddress.ip_address("::1")
    assert parse_ip("example.org") is None


def test_resolve_host_uses_the_system_resolver() -> None:
    assert "127.0.0.1" in resolve_host("localhost", 80) or "::1" in resolve_host("localhost", 80)
    assert resolve_host("2130706433", 80) == ["127.0.0.1"]


def policy() -> AddressPolicy:
    return AddressPolicy(is_public_address, lambda host, port: [])


PUBLIC = ipaddress.ip_address("93.184.216.34")
PRIVATE = ipaddress.ip_address("10.0.0.1")


def test_first_connection_may_be_private_and_stays_allowed_locally() -> None:
    rule = policy()
    rule.check([PRIVATE])
    rule.check([PRIVATE])
    assert rule.seen_public is False


def test_private_after_public_is_refused() -> None:
    rule = policy()
    rule.check([PUBLIC])
    with pytest.raises(AddressRefusedError, match=REDIRECT_REFUSED):
        rule.check([PRIVATE])


def test_local_then_public_then_private_is_refused() -> None:
    rule = policy()
    rule.check([PRIVATE])
    rule.check([PUBLIC])
    with pytest.raises(AddressRefusedError):
        rule.check([PRIVATE])


def test_a_mixed_answer_counts_as_private() -> None:
    rule = policy()
    rule.check([PUBLIC])
    with pytest.raises(AddressRefusedError):
        rule.check([PUBLIC, PRIVATE])


def test_unresolvable_name_is_a_connect_error() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    rule = AddressPolicy(is_public_address, fail)
    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve host nowhere\.test"):
        asyncio.run(rule.lookup("nowhere.test", 80))


def test_backend_refuses_before_dialling() -> None:
    rule = AddressPolicy(is_public_address, lambda host, port: ["10.0.0.1"])
    rule.check([PUBLIC])
    backend = GuardedBackend(rule)
    with pytest.raises(AddressRefusedError):
        asyncio.run(backend.connect_tcp("intranet.test", 80, timeout=1.0))
    with pytest.raises(AddressRefusedError):
        asyncio.run(backend.connect_unix_socket("/run/docker.sock"))


def test_guarded_transport_uses_the_guarded_backend() -> None:
    """Fails loudly if httpx stops keeping its pool in `_pool` (see netguard's docstring)."""
    transport = GuardedTransport(policy(), ssl.create_default_context())
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, GuardedBackend)
