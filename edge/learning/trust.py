"""Who sent a label, and how much any one sender may teach edge (docs/feedback.md, "Threat model").

Feedback tokens are issued to whoever fetches a page, with whatever headers it chose, so a
valid token proves only that *someone* fetched a page. What an attacker cannot vary cheaply is
its network address, so labels are attributed to a **client**: the peer address edge sees (which
uvicorn takes from ``X-Forwarded-For`` only when the peer is one of ``EDGE_FORWARDED_ALLOW_IPS``),
an IPv4 address as it is, an IPv6 address by its ``/64`` (one subscriber's prefix); and to the
**network** around it (IPv4 ``/24``, IPv6 ``/48``), so that renting a block of addresses buys
little more than one address.

    >>> client_group("203.0.113.7"), client_group("2001:db8:1:2:aaaa::1"), client_group("::ffff:198.51.100.9")
    ('203.0.113.7', '2001:db8:1:2::/64', '198.51.100.9')
    >>> network_group("203.0.113.7"), network_group("2001:db8:1:2:aaaa::1")
    ('203.0.113.0/24', '2001:db8:1::/48')
    >>> client_group(None), client_group("not an address")
    ('?', '?')

:class:`LabelBudget` is a token bucket per client and per network, in bounded tables: each
client may turn ``burst`` tokens into labels at once and ``rate`` per second after that.

    >>> budget = LabelBudget(client_burst=2, client_rate=1.0, network_burst=100, network_rate=10.0)
    >>> [budget.take("198.51.100.9", now=0.0) for _ in range(3)], budget.take("198.51.100.9", now=1.0)
    ([True, True, False], True)
    >>> budget.take("198.51.100.10", now=1.0)     # another client of the same /24 has its own bucket
    True
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from functools import lru_cache

__all__ = ["client_group", "network_group", "LabelBudget", "UNKNOWN_CLIENT"]

#: The group of a request whose peer address edge does not know (an in-process app without one).
UNKNOWN_CLIENT = "?"


@lru_cache(maxsize=4096)
def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=4096)
def client_group(address: str | None) -> str:
    """The client a label is attributed to: an IPv4 address, or an IPv6 address's ``/64``."""
    ip = _parse(address) if address else None
    if ip is None:
        return UNKNOWN_CLIENT
    if ip.version == 4:
        return str(ip)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


@lru_cache(maxsize=4096)
def network_group(address: str | None) -> str:
    """The network around a client: an IPv4 ``/24`` or an IPv6 ``/48``."""
    ip = _parse(address) if address else None
    if ip is None:
        return UNKNOWN_CLIENT
    if ip.version == 4:
        return str(ipaddress.IPv4Network((int(ip) >> 8 << 8, 24)))
    return str(ipaddress.IPv6Network((int(ip) >> 80 << 80, 48)))


class _Buckets:
    """Token buckets by key, bounded: past ``max_keys`` the least recently used key is forgotten.

    A forgotten key comes back with a full bucket, so the bound trades a little budget for a client
    that returns after a flood of other keys against memory that never grows.
    """

    __slots__ = ("burst", "rate", "max_keys", "_state")

    def __init__(self, burst: float, rate: float, max_keys: int) -> None:
        self.burst = float(burst)
        self.rate = float(rate)
        self.max_keys = max_keys
        self._state: OrderedDict[str, list[float]] = OrderedDict()  # key → [tokens, last update]

    def __len__(self) -> int:
        return len(self._state)

    def peek(self, key: str, now: float) -> bool:
        state = self._state.get(key)
        if state is None:
            return self.burst >= 1.0
        return min(self.burst, state[0] + (now - state[1]) * self.rate) >= 1.0

    def take(self, key: str, now: float) -> None:
        state = self._state.get(key)
        if state is None:
            self._state[key] = [self.burst - 1.0, now]
            if len(self._state) > self.max_keys:
                self._state.popitem(last=False)
            return
        self._state.move_to_end(key)
        state[0] = min(self.burst, state[0] + max(0.0, now - state[1]) * self.rate) - 1.0
        state[1] = max(state[1], now)


class LabelBudget:
    """How many labels each client and each network may give (token buckets, bounded tables).

    ``take(address, now)`` is True (and spends a token from both the client's and its network's
    bucket) when both have one; False otherwise (nothing spent). Defaults: a client may give
    ``client_burst`` = 60 labels at once and one every 2 s after that (a shopper gives one per page
    view, tens of seconds apart; a carrier NAT shares an address among many shoppers, whose labels
    beyond that are only a sample); a network ``network_burst`` = 240 and 2 per second.
    """

    def __init__(
        self,
        client_burst: float = 60.0,
        client_rate: float = 0.5,
        network_burst: float = 240.0,
        network_rate: float = 2.0,
        max_keys: int = 20_000,
    ) -> None:
        if min(client_burst, network_burst) < 1 or min(client_rate, network_rate) < 0 or max_keys < 1:
            raise ValueError("label budgets need a burst of at least 1, a rate ≥ 0 and max_keys ≥ 1")
        self.clients = _Buckets(client_burst, client_rate, max_keys)
        self.networks = _Buckets(network_burst, network_rate, max_keys)

    def __len__(self) -> int:
        return len(self.clients) + len(self.networks)

    def take(self, address: str | None, now: float) -> bool:
        client, network = client_group(address), network_group(address)
        if not (self.clients.peek(client, now) and self.networks.peek(network, now)):
            return False
        self.clients.take(client, now)
        self.networks.take(network, now)
        return True
