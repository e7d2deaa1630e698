"""The registry: one lock directory, its lock files, their records, and sticky names.

One lock file per port (``port-NNNNN.lock``; see :mod:`localport._lockfile`), one small JSON
file per sticky name. Lock files are never unlinked: unlinking a held lock file lets the next
process lock a fresh inode at the same path while the first still holds the old one, and both
would own the port. Reading the registry without taking any lock is
:mod:`localport._listing`'s job.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _platform
from ._lockdir import default_lock_dir, open_lock_dir
from ._lockfile import (
    RECORD_LIMIT,
    create_lock_file,
    lock,
    open_lock_file,
    parse_record,
    read_record,
    read_record_fd,
    write_record,
)

if TYPE_CHECKING:
    import socket

    from ._lockfile import LockedPort

__all__ = [
    "NameRecord",
    "Registry",
    "ReservationInfo",
    "default_lock_dir",
    "info_from_record",
    "lease_live",
    "sticky_key",
]

_LOCK_PREFIX = "port-"
_LOCK_SUFFIX = ".lock"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class ReservationInfo:
    """A live reservation as the lock directory describes it (see :func:`localport.reservations`).

    :ivar port: the reserved port.
    :ivar proto: ``"tcp"``, ``"udp"`` or ``"both"``.
    :ivar host: the address the reserving process said its server binds.
    :ivar name: the reservation's sticky name, or ``None``.
    :ivar pid: the process holding the reservation.
    :ivar process_started: when that process started (seconds since the epoch), if known.
    :ivar created: when the reservation was made (seconds since the epoch).
    :ivar lease_until: set when the reservation was released with a lease: other localport
        users leave the port alone until this time (seconds since the epoch).
    :ivar guarded: whether a guard socket holds the port against outgoing connections.
    :ivar lock_path: the lock file.
    :ivar scope: the project directory the sticky name belongs to, or ``None``.

        .. versionadded:: 0.2.0
    :ivar compromised: the reservation still lives, but its lock file was deleted or replaced
        (by another user of a shared directory, or a clean-up script): the port is no longer
        protected by the file, only by localport's claim (see the concepts page). Its other
        fields come from the lost file when its holder's descriptors can be read, else
        they are placeholders (``proto`` ``"tcp"``, ``host`` ``""``, ``created`` 0, and
        ``pid`` 0 when the holder is another user's process and you are not root).

        .. versionadded:: 0.2.0
    """

    port: int
    proto: str
    host: str
    name: str | None
    pid: int
    process_started: float | None
    created: float
    lease_until: float | None
    guarded: bool
    lock_path: str
    scope: str | None = None
    compromised: bool = False


def sticky_key(name: str, scope: str | None) -> str:
    """What a sticky name is known by: the name alone, or, scoped to a project directory,
    the directory and the name (NUL cannot occur in either)."""
    return name if scope is None else f"{scope}\x00{name}"


@dataclass(frozen=True)
class NameRecord:
    """The port last reserved under a sticky name, as its name file remembers it."""

    name: str
    port: int
    host: str
    scope: str | None


class Registry:
    """One lock directory, checked and ready."""

    __slots__ = ("_claim_prefix", "path", "shared")

    def __init__(self, path: str, *, shared: bool) -> None:
        self.path = path
        #: Named by the caller or ``LOCALPORT_DIR``: lock files are made for every co-user.
        self.shared = shared
        self._claim_prefix: str | None = None

    @classmethod
    def open(cls, lock_dir: str | None, *, write: bool = True) -> Registry:
        """Resolve (argument, ``LOCALPORT_DIR``, default) and check it; a writer's is created
        if missing, a reader's is left missing (it holds no reservations)."""
        checked = open_lock_dir(lock_dir, write=write)
        return cls(checked.path, shared=checked.shared)

    def lock_path(self, port: int) -> str:
        return os.path.join(self.path, f"{_LOCK_PREFIX}{port}{_LOCK_SUFFIX}")

    @staticmethod
    def port_of(file_name: str) -> int | None:
        """The port a lock file's name stands for, or ``None`` for any other file."""
        if file_name.startswith(_LOCK_PREFIX) and file_name.endswith(_LOCK_SUFFIX):
            number = file_name[len(_LOCK_PREFIX) : -len(_LOCK_SUFFIX)]
            if number.isdigit() and number.isascii():
                return int(number)
        return None

    # -- locking -------------------------------------------------------------------------------

    def open_existing(self, port: int) -> int | None:
        """The port's lock file opened for locking, or ``None`` if it was never made.

        :raises OSError: the path is a symbolic link (``ELOOP``), or not a file localport may
            lock (``EPERM``; see :mod:`localport._lockfile`).
        """
        return open_lock_file(self.lock_path(port))

    def lock(self, port: int, fd: int | None = None) -> LockedPort | None:
        """Take the port's lock without waiting (creating its file if need be); ``None`` when
        another holder has it. *fd*, from :meth:`open_existing`, is used (and owned) if given.

        :raises OSError: as :meth:`open_existing`, or when the file cannot be created.
        """
        path = self.lock_path(port)
        if fd is None:
            fd = create_lock_file(path, shared=self.shared)
        return lock(fd, path)

    # -- claims --------------------------------------------------------------------------------

    @property
    def claim_prefix(self) -> str:
        """The start of this directory's claim names (see :meth:`claim`): its real path,
        hashed, since claim names are short and shared by every directory on the machine."""
        if self._claim_prefix is None:
            self._claim_prefix = _claim_prefix(self.path)
        return self._claim_prefix

    def claim(self, port: int) -> socket.socket | None:
        """Claim *port* beside its lock: a mark that survives the lock file being unlinked or
        replaced, so a second reserver can tell that the first still lives. ``None`` where the
        system has no claims.

        :raises FileExistsError: a live reservation of this directory claims the port.
        """
        name = f"{self.claim_prefix}{port}"
        try:
            return _platform.system.claim(name)
        except FileExistsError:
            if _held_by_impostor(self.path, name):
                return None  # not a reservation of this directory: reserve without a claim
            raise

    # -- records -------------------------------------------------------------------------------

    write_record = staticmethod(write_record)
    read_record_fd = staticmethod(read_record_fd)

    def read_record(self, port: int) -> dict[str, Any] | None:
        """The port's record read without the lock: a description, maybe stale or partial."""
        return read_record(self.lock_path(port))

    # -- sticky names --------------------------------------------------------------------------

    def _name_path(self, key: str) -> str:
        import hashlib  # sticky names only: most commands never need it

        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return os.path.join(self.path, f"{_NAME_PREFIX}{digest}{_NAME_SUFFIX}")

    def recorded_port(self, name: str, scope: str | None = None) -> int | None:
        """The port last reserved under *name* (in *scope*), if one was recorded."""
        found = _read_name_file(self._name_path(sticky_key(name, scope)))
        if found is None or found.name != name or found.scope != scope:
            return None
        return found.port

    def recorded_names(self, scope: str | None) -> list[NameRecord]:
        """Every sticky name recorded in *scope*, sorted by name."""
        try:
            files = os.listdir(self.path)
        except OSError:
            return []
        found = []
        for file_name in files:
            if file_name.startswith(_NAME_PREFIX) and file_name.endswith(_NAME_SUFFIX):
                record = _read_name_file(os.path.join(self.path, file_name))
                if record is not None and record.scope == scope:
                    found.append(record)
        return sorted(found, key=lambda record: record.name)

    def record_port(
        self, name: str, port: int, *, scope: str | None = None, host: str = "127.0.0.1"
    ) -> None:
        """Remember *port* for *name*: written to a new file, then renamed over the old one."""
        final = self._name_path(sticky_key(name, scope))
        import tempfile

        data = json.dumps({"name": name, "port": port, "scope": scope, "host": host}).encode()
        try:
            fd, temporary = tempfile.mkstemp(prefix=".name-", dir=self.path)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            if self.shared:
                os.chmod(temporary, 0o644)
            # rename() replaces a planted symlink itself, never the file it points to.
            os.replace(temporary, final)
        except OSError:
            # Best effort: in a shared sticky directory another user's record may not be ours
            # to replace. The name still gets a port, only not a remembered one.
            with contextlib.suppress(OSError):
                os.unlink(temporary)


_NAME_PREFIX = "name-"
_NAME_SUFFIX = ".json"


def _read_name_file(path: str) -> NameRecord | None:
    """A name file's record, or ``None`` if it is missing or not one (any user may write
    one in a shared directory: every field is checked)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        record = parse_record(os.read(fd, RECORD_LIMIT))
    except OSError:
        return None
    finally:
        os.close(fd)
    if record is None:
        return None
    name, port, scope = record.get("name"), record.get("port"), record.get("scope")
    if not isinstance(name, str) or not 0 < len(name) <= _TEXT_LIMIT:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    if scope is not None and (not isinstance(scope, str) or len(scope) > _SCOPE_TEXT_LIMIT):
        return None
    host = _text(record.get("host"), "127.0.0.1") or "127.0.0.1"
    return NameRecord(name=name, port=port, host=host, scope=scope)


def _held_by_impostor(path: str, name: str) -> bool:
    """Whether claim *name* of the lock directory *path* is held by a user who cannot have
    reserved anything there.

    Claim names live in a namespace every local user may bind in, and the name of a
    directory's claims can be computed: without this check, another user could hold them all
    and keep you from reserving any port in your own private directory. Only the directory's
    owner and root can make lock files in a directory no one else may write to; any user can
    in one open to others, so there a claim always counts.
    """
    system = _platform.system
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    inode = (system.claims(name) or {}).get(name)
    pid = None if inode is None else system.pids_of_inodes([inode]).get(inode)
    facts = None if pid is None else system.process_facts(pid)
    return facts is not None and facts.uid not in (info.st_uid, 0)


@functools.lru_cache(maxsize=64)
def _claim_prefix(path: str) -> str:
    """Computed once per directory and process: ``reserve()`` opens its registry on every call."""
    import hashlib

    real = os.path.realpath(path).encode("utf-8", "surrogateescape")
    return f"localport:{hashlib.sha256(real).hexdigest()[:24]}:"


#: Records are written by whoever holds a lock file, in a shared directory any user: every
#: field is checked before use, and a record that fails is "unreadable", never an exception.
_PID_LIMIT = 2**31 - 1
_TIME_LIMIT = 2**35  # seconds since the epoch: about the year 3058, which localtime() handles
_TEXT_LIMIT = 256
_SCOPE_TEXT_LIMIT = 4096


def _time(value: object) -> float | None:
    """A time from a record: a finite number of seconds within range, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < _TIME_LIMIT else None


def _text(value: object, default: str | None, limit: int = _TEXT_LIMIT) -> str | None:
    return value if isinstance(value, str) and len(value) <= limit else default


def lease_live(record: dict[str, Any], now: float) -> bool:
    until = _time(record.get("lease_until"))
    return until is not None and until > now


def info_from_record(port: int, record: dict[str, Any], path: str) -> ReservationInfo | None:
    """The :class:`ReservationInfo` a record describes (``None`` if it describes nobody, or its
    fields are out of range)."""
    pid = record.get("pid")
    created = _time(record.get("created"))
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _PID_LIMIT:
        return None
    if created is None:
        return None
    released = record.get("released") is not None
    return ReservationInfo(
        port=port,
        proto=_text(record.get("proto"), "tcp") or "tcp",
        host=_text(record.get("host"), "127.0.0.1") or "127.0.0.1",
        name=_text(record.get("name"), None),
        pid=pid,
        process_started=_time(record.get("process_started")),
        created=created,
        lease_until=_time(record.get("lease_until")) if released else None,
        guarded=record.get("guarded") is True,
        lock_path=path,
        scope=_text(record.get("scope"), None, _SCOPE_TEXT_LIMIT),
    )
