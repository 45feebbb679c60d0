"""What a provisioning target may be called: a login name, a host and a port that OpenSSH cannot mistake
for anything else.

Why this is checked here and not left to ssh: ``ssh`` reads every argument that starts with ``-`` as an
option, wherever it stands, so a "user" of ``-oProxyCommand=sh -c ...`` or a host of ``-oLocalCommand=...``
is a command run on the workstation. Every invocation also puts ``--`` before the destination
(:mod:`provisioning.remote`), but the values are refused first, with one line naming them and what is
allowed, so nothing odd ever reaches a program. The allowed forms are the ones a Pi can have anyway:

* user: a POSIX login name as Debian's ``adduser`` takes it: a letter or ``_``, then letters, digits,
  ``.``, ``_`` or ``-``, 32 characters at most;
* host: a DNS or mDNS host name (letters, digits and ``-`` in dot-separated labels of 1-63 characters, not
  starting or ending with ``-``, 253 characters in all, the last label not all digits), a dotted IPv4
  address, or an IPv6 address (in brackets when a port follows; a zone such as ``%eth0`` is allowed);
* port: 1-65535.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from edge.errors import ProvisioningError

USER_RULE = "a letter or _, then letters, digits, '.', '_' or '-', at most 32 characters"
HOST_RULE = "a host name (letters, digits, '-' and dots), an IPv4 address or an [IPv6] address"

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ZONE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Destination:
    """A checked ``user@host[:port]``."""

    user: str
    host: str
    port: int = 22

    @property
    def ssh(self) -> str:
        """The destination as ssh takes it (the port goes with ``-p``)."""
        return f"{self.user}@{self.host}"


def check_user(user: str) -> str:
    """``user`` if it is a login name (module docstring), else one ProvisioningError line."""
    if not _USER.fullmatch(user):
        raise ProvisioningError(f"target user {user!r}: not a login name; allowed: {USER_RULE}")
    return user


def _is_ipv6(host: str) -> bool:
    address, percent, zone = host.partition("%")
    if percent and not _ZONE.fullmatch(zone):
        return False
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def check_host(host: str) -> str:
    """``host`` if it is a host name, an IPv4 or an IPv6 address (without brackets), else one line."""
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    if ":" in host:
        if _is_ipv6(host):
            return host
    else:
        name = host.removesuffix(".")
        labels = name.split(".")
        # An all-digit last label is no name: "192.168.1" would reach the resolver as an odd IPv4.
        if (0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
                and not labels[-1].isdigit()):
            return host
    raise ProvisioningError(f"target host {host!r}: not a host name or address; allowed: {HOST_RULE}")


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ProvisioningError(f"target port {port!r}: not a port number; allowed: 1-65535")
    return port


def parse_destination(text: str) -> Destination:
    """``user@host``, ``user@host:port``, ``user@[IPv6]`` or ``user@[IPv6]:port``, every part checked.

    A bare IPv6 address (``pi@fe80::1``) is accepted without a port, as ssh takes it.
    """
    user, at, hostport = text.rpartition("@")
    if not at or not user or not hostport:
        raise ProvisioningError(f"target {text!r}: expected user@host or user@host:port")
    host, port = hostport, 22
    port_text: str | None = None  # None: no port given
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or rest and not rest.startswith(":"):
            raise ProvisioningError(f"target {text!r}: expected user@[IPv6] or user@[IPv6]:port")
        if not _is_ipv6(host):
            raise ProvisioningError(f"target host {host!r}: not an IPv6 address; allowed in brackets: an IPv6 "
                                    "address such as [fe80::1%eth0]")
        port_text = rest.removeprefix(":") if rest else None
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ProvisioningError(f"target {text!r}: port {port_text!r} is not a port number; allowed: 1-65535")
        port = int(port_text)
    if not host:
        raise ProvisioningError(f"target {text!r}: no host name")
    return Destination(check_user(user), check_host(host), port)
