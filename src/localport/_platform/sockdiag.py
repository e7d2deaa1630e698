"""Linux sock_diag: ask the kernel which sockets use a local port, without reading /proc/net.

``/proc/net/tcp`` costs about 5 ms a read (the kernel walks its whole hash table) and does not
list sockets that are bound but not listening. A ``SOCK_DIAG_BY_FAMILY`` netlink dump with a
bytecode filter on the source port is answered from the kernel's own tables in well under a
millisecond, and recent kernels include bound-but-inactive TCP sockets in it (the
``TCP_BOUND_INACTIVE`` pseudo-state; :func:`lists_bound_sockets` checks), localport's guards
among them.

Each answer gives the socket's state, local and remote address, owner uid and inode; which
process holds the inode is another question (:meth:`Linux.pids_of_inodes
<localport._platform.linux.Linux.pids_of_inodes>`). Linux only: imported by
:mod:`localport._platform.linux` and nothing else.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from typing import TYPE_CHECKING

from .portable import SocketRecord

if TYPE_CHECKING:
    from .._arguments import SocketProto

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_INET_DIAG_REQ_BYTECODE = 1
_INET_DIAG_SKV6ONLY = 11  # a u8 attribute the kernel adds for every IPv6 socket
_INET_DIAG_BC_S_GE = 2
_INET_DIAG_BC_S_LE = 3

#: Linux TCP states (include/net/tcp_states.h), named as ``ss`` and psutil name them.
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
    13: "BOUND",  # TCP_BOUND_INACTIVE: bound, neither listening nor connected (kernel >= 6.5)
}
LISTEN = 10
_BOUND_INACTIVE = 13
#: The three TCP questions, in the order to ask them. Listeners live in the small listening
#: hash (tens of microseconds). Bound-inactive sockets are found by walking the bind hash,
#: which also holds every TIME_WAIT leftover, and everything else (connections, TIME_WAIT) by
#: walking the whole established hash (262,144 buckets): both cost milliseconds on a busy
#: machine. Callers ask the next question only when the one before found nothing.
TCP_PHASES = (
    1 << LISTEN,
    1 << _BOUND_INACTIVE,
    0xFFFFFFFF & ~((1 << LISTEN) | (1 << _BOUND_INACTIVE)),
)
_ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes).
_REQUEST = struct.Struct("=BBBBI48s")
# inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian; src, dst
# 16 bytes each; interface; cookie), expires, rqueue, wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")
_RTATTR = struct.Struct("=HH")
_BYTECODE_OP = struct.Struct("=BBH")


def _port_filter(port: int) -> bytes:
    """Bytecode accepting sockets whose source port is *port* (sport >= port and <= port).

    Each comparison is two ops: the condition, then a pseudo-op carrying the port. ``yes`` is
    the jump when the condition holds, ``no`` when not; jumping to the end accepts, jumping
    four bytes past it rejects.
    """
    length = 16
    return b"".join(
        (
            _BYTECODE_OP.pack(_INET_DIAG_BC_S_GE, 8, length + 4),
            _BYTECODE_OP.pack(0, 0, port),
            _BYTECODE_OP.pack(_INET_DIAG_BC_S_LE, 8, length - 8 + 4),
            _BYTECODE_OP.pack(0, 0, port),
        )
    )


def _request(family: int, protocol: int, states: int, port: int | None, sequence: int) -> bytes:
    body = _REQUEST.pack(family, protocol, 0, 0, states, b"\0" * 48)
    if port is not None:
        bytecode = _port_filter(port)
        body += _RTATTR.pack(_RTATTR.size + len(bytecode), _INET_DIAG_REQ_BYTECODE) + bytecode
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body),
        _SOCK_DIAG_BY_FAMILY,
        _NLM_F_REQUEST | _NLM_F_DUMP,
        sequence,
        0,
    )
    return header + body


#: The enum members, looked up by number: calling the enum costs more than parsing a
#: message, and a TIME_WAIT crowd is tens of thousands of messages.
_FAMILIES = {int(family): family for family in (socket.AF_INET, socket.AF_INET6)}


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _dump(
    sock: socket.socket, family: int, protocol: int, states: int, port: int | None
) -> list[SocketRecord]:
    proto: SocketProto = "tcp" if protocol == socket.IPPROTO_TCP else "udp"
    sock.send(_request(family, protocol, states, port, 1))
    found: list[SocketRecord] = []
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                return found
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                raise OSError(-code, os.strerror(-code))
            if kind == _SOCK_DIAG_BY_FAMILY:
                body = offset + _NLMSGHDR.size
                fields = _MESSAGE.unpack_from(data, body)
                msg_family, state, sport, dport, src, dst = fields[0], fields[1], *fields[4:8]
                uid, inode = fields[-2], fields[-1]
                remote_port = int.from_bytes(dport, "big")
                remote_host = _address(msg_family, dst)
                connected = remote_port != 0
                found.append(
                    SocketRecord(
                        family=_FAMILIES.get(msg_family) or socket.AddressFamily(msg_family),
                        proto=proto,
                        state=_state_name(proto, state, connected=connected),
                        local=(_address(msg_family, src), int.from_bytes(sport, "big")),
                        remote=(remote_host, remote_port) if connected else None,
                        uid=uid,
                        inode=inode,
                        v6only=(
                            _v6only(data, body + _MESSAGE.size, offset + length)
                            if msg_family == socket.AF_INET6
                            else None
                        ),
                    )
                )
            offset += (length + 3) & ~3


def _v6only(data: bytes, start: int, end: int) -> bool | None:
    """The INET_DIAG_SKV6ONLY attribute among those following a message, if present."""
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size:
            return None
        if kind == _INET_DIAG_SKV6ONLY and length > _RTATTR.size:
            return bool(data[start + _RTATTR.size])
        start += (length + 3) & ~3
    return None


def _state_name(proto: str, state: int, *, connected: bool) -> str:
    if proto == "udp":
        # UDP has no states; the kernel reports TCP_ESTABLISHED for a connected socket and
        # TCP_CLOSE for one that is only bound.
        return "CONNECTED" if connected else "BOUND"
    return TCP_STATES.get(state, f"STATE_{state}")


def query(port: int | None, proto: SocketProto, *, states: int = _ALL_STATES) -> list[SocketRecord]:
    """Every IPv4 and IPv6 socket of *proto* on local *port* (every port when ``None``).

    :param states: a bit mask of TCP states (``1 << state``; see :data:`TCP_PHASES`); UDP
        sockets are always all returned.

    :raises OSError: when netlink sock_diag is not available (no ``inet_diag`` module, a
        sandbox that forbids netlink); callers fall back to psutil.
    """
    protocol = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    if proto == "udp":
        states = _ALL_STATES
    found: list[SocketRecord] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                found.extend(_dump(sock, family, protocol, states, port))
            except OSError as error:
                if error.errno == errno.ENOENT and family == socket.AF_INET6:
                    continue  # no IPv6 in this kernel
                raise
    return found


@functools.cache
def lists_bound_sockets() -> bool:
    """Whether this kernel's sock_diag lists TCP sockets that are bound but not listening.

    Only recent kernels dump them (the ``TCP_BOUND_INACTIVE`` pseudo-state). Asked once per
    process, by binding a socket on a port the kernel picks and looking for it.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        try:
            found = query(port, "tcp", states=TCP_PHASES[1])
        except OSError:
            return False
        return any(item.inode for item in found)
