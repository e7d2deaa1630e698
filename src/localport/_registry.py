"""The lock directory: where cooperating processes meet.

One lock file per port (``port-NNNNN.lock``). Holding its ``flock`` (through
:class:`filelock.FileLock`) *is* the reservation: the kernel drops the lock the moment the holder
dies, even on ``SIGKILL``, so no stale state can block anyone. The JSON written into the file
(pid, process start time, name, protocol, host, times) is a description of the holder, useful for
listing and for a cheap "skip this one" hint, and never trusted on its own to grant a port.

Lock files are never unlinked: unlinking a held lock file lets the next process lock a fresh inode
at the same path while the first still holds the old one, and both would own the port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _platform
from ._errors import LockDirError

if TYPE_CHECKING:
    from filelock import BaseFileLock

LOCK_DIR_ENV = "LOCALPORT_DIR"
_LOCK_PREFIX = "port-"
_LOCK_SUFFIX = ".lock"
_METADATA_LIMIT = 4096
# Built once: json.dumps() with non-default options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
# Reads must never block on a FIFO or follow a link someone planted at a lock file's path.
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


def default_lock_dir() -> str:
    """The private per-user lock directory used when neither argument nor setting names one."""
    return _platform.system.default_lock_dir()


def _check_directory(path: str, *, private: bool) -> None:
    """Refuse a lock directory another user could tamper with."""
    info = os.lstat(path)  # FileNotFoundError: the caller creates it
    if stat.S_ISLNK(info.st_mode):
        raise LockDirError(
            path, "it is a symbolic link; remove it, localport creates the directory"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise LockDirError(path, "it is not a directory; remove it or set LOCALPORT_DIR elsewhere")
    if not _platform.system.posix_permissions:
        return
    uid = os.getuid()
    loose = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if private:
        if info.st_uid != uid:
            raise LockDirError(
                path,
                f"it belongs to uid {info.st_uid}, not to you (uid {uid}); someone may have "
                "planted it: remove it, or point LOCALPORT_DIR at a directory you own",
            )
        if info.st_mode & 0o077 or info.st_mode & 0o700 != 0o700:
            raise LockDirError(
                path,
                f"its mode is {stat.S_IMODE(info.st_mode):04o}, but a private lock directory "
                f"must be 0700; run: chmod 700 {path}",
            )
        return
    # A shared directory (LOCALPORT_DIR or lock_dir=): others may create lock files in it, but
    # they must not be able to delete or rename ours (that splits a lock across two inodes).
    if (loose or info.st_uid != uid) and not info.st_mode & stat.S_ISVTX:
        who = "writable by others" if loose else f"owned by uid {info.st_uid}"
        raise LockDirError(
            path,
            f"it is {who} without the sticky bit, so another user could delete or replace lock "
            f"files; run: chmod 1777 {path} (or 1770 with a shared group), or use a directory "
            "of your own",
        )


def _make_directory(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


@dataclass
class LockedPort:
    """A lock file this process holds, with the descriptor filelock locked."""

    lock: BaseFileLock
    fd: int
    path: str

    def release(self) -> None:
        """Let go of the lock (the file stays: lock files are never unlinked)."""
        self.lock.release()


class Registry:
    """One lock directory, checked and ready."""

    __slots__ = ("path", "shared")

    def __init__(self, path: str, *, shared: bool) -> None:
        self.path = path
        self.shared = shared

    @classmethod
    def open(cls, lock_dir: str | None) -> Registry:
        """Resolve (argument, ``LOCALPORT_DIR``, default), create if missing, and check it."""
        shared = True
        path = lock_dir if lock_dir is not None else os.environ.get(LOCK_DIR_ENV) or None
        if path is None:
            shared = False
            path = default_lock_dir()
        path = os.path.abspath(path)
        try:
            _check_directory(path, private=not shared)
        except FileNotFoundError:
            try:
                _make_directory(path)
            except OSError as error:
                raise LockDirError(path, f"it cannot be created: {error.strerror}") from error
            _check_directory(path, private=not shared)
        return cls(path, shared=shared)

    def lock_path(self, port: int) -> str:
        return os.path.join(self.path, f"{_LOCK_PREFIX}{port}{_LOCK_SUFFIX}")

    # -- locking -------------------------------------------------------------------------------

    def try_lock(self, port: int) -> LockedPort | None:
        """Take the port's lock without waiting; ``None`` when another holder has it.

        :raises OSError: for anything but "already locked" (a planted symlink gives ``ELOOP``).
        """
        from filelock import FileLock, Timeout  # 40 ms to import: only when first needed

        fds: list[int] = []
        path = self.lock_path(port)
        lock = FileLock(
            path,
            mode=0o666 if self.shared else 0o600,
            # Released from whatever thread calls release(), not only the acquiring one.
            thread_local=False,
            is_singleton=False,
            # A filesystem without flock must fail closed, not degrade to a lock file that a
            # crashed holder leaves behind.
            fallback_to_soft=False,
            preserve_lock_file=True,
            on_acquired=fds.append,
        )
        try:
            lock.acquire(blocking=False)
        except Timeout:  # subclasses OSError: must be caught first
            return None
        return LockedPort(lock, fds[-1], path)

    # -- metadata ------------------------------------------------------------------------------

    @staticmethod
    def write_metadata(fd: int, record: dict[str, Any]) -> None:
        data = _ENCODER.encode(record).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    @staticmethod
    def read_metadata_fd(fd: int) -> dict[str, Any] | None:
        try:
            return _parse(os.pread(fd, _METADATA_LIMIT, 0))
        except OSError:
            return None

    def read_metadata(self, port: int) -> dict[str, Any] | None:
        """The port's metadata read without the lock: a description, maybe stale or partial."""
        try:
            fd = os.open(self.lock_path(port), _READ_FLAGS)
        except OSError:
            return None
        try:
            return _parse(os.read(fd, _METADATA_LIMIT))
        except OSError:
            return None
        finally:
            os.close(fd)

    def hinted_taken(self, port: int, now: float) -> bool:
        """Whether the metadata says a live process holds (or a lease covers) the port.

        Only used to *skip* a port without touching it: a reserved port must not see even a
        momentary probe bind, because that would make its owner's own ``bind()`` fail. A wrong
        "taken" costs one skipped candidate; a wrong "free" is caught by the lock.
        """
        record = self.read_metadata(port)
        if record is None:
            return False
        if record.get("released") is not None:
            return lease_live(record, now)
        pid = record.get("pid")
        return isinstance(pid, int) and _platform.system.pid_alive(pid)

    # -- sticky names --------------------------------------------------------------------------

    def _name_path(self, name: str) -> str:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return os.path.join(self.path, f"name-{digest}.json")

    def recorded_port(self, name: str) -> int | None:
        """The port last reserved under *name*, if one was recorded."""
        try:
            fd = os.open(self._name_path(name), _READ_FLAGS)
        except OSError:
            return None
        try:
            record = _parse(os.read(fd, _METADATA_LIMIT))
        except OSError:
            return None
        finally:
            os.close(fd)
        if record is None or record.get("name") != name:
            return None
        port = record.get("port")
        return port if isinstance(port, int) and not isinstance(port, bool) else None

    def record_port(self, name: str, port: int) -> None:
        """Remember *port* for *name*: written to a new file, then renamed over the old one."""
        final = self._name_path(name)
        data = json.dumps({"name": name, "port": port}).encode()
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

    # -- listing -------------------------------------------------------------------------------

    def lock_files(self) -> list[tuple[int, os.DirEntry[str]]]:
        found = []
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            return []
        for entry in entries:
            name = entry.name
            if not (name.startswith(_LOCK_PREFIX) and name.endswith(_LOCK_SUFFIX)):
                continue
            number = name[len(_LOCK_PREFIX) : -len(_LOCK_SUFFIX)]
            if number.isdigit():
                found.append((int(number), entry))
        found.sort(key=lambda item: item[0])
        return found

    def is_reserved(self, port: int, now: float) -> bool:
        """Whether a live reservation or lease covers *port*, read without taking any lock."""
        held = _platform.system.held_lock_inodes()
        if held is None:
            return self.hinted_taken(port, now)
        try:
            info = os.lstat(self.lock_path(port))
        except OSError:
            return False
        if not stat.S_ISREG(info.st_mode):
            return True  # a planted symlink or other oddity: reserve() cannot use this port
        if info.st_ino in held:
            # The lock is the truth. Its record may still describe an earlier, released
            # reservation while a new holder is midway through taking the port.
            return True
        record = self.read_metadata(port)
        return record is not None and lease_live(record, now)

    def describe(self, port: int) -> ReservationInfo | None:
        """What the port's record says, live or not: for explaining a refusal."""
        record = self.read_metadata(port)
        return None if record is None else _info_from_record(port, record, self.lock_path(port))

    def reservation_at(self, port: int) -> ReservationInfo | None:
        """The live reservation (or lease) of *port*, read without taking any lock."""
        now = time.time()
        # The record first: only a port whose record describes a live holder or lease is
        # worth reading /proc/locks for, which grows with every lock on the machine.
        record = self.read_metadata(port)
        if record is None or (record.get("released") is not None and not lease_live(record, now)):
            return None  # never used, released, or locked by a holder not yet described
        if not self.is_reserved(port, now):
            return None
        return _info_from_record(port, record, self.lock_path(port))

    def live(self) -> list[ReservationInfo]:
        """Every live reservation (and live lease) in this directory."""
        now = time.time()
        held = _platform.system.held_lock_inodes()
        result = []
        for port, entry in self.lock_files():
            record = self.read_metadata(port)
            if record is None:
                continue  # never used, or a reservation still being made
            released = record.get("released") is not None
            if held is not None:
                try:
                    inode = entry.stat(follow_symlinks=False).st_ino
                except OSError:
                    continue
                alive = inode in held and not released
            else:
                alive = not released and _record_process_alive(record)
            leased = released and lease_live(record, now)
            if alive or leased:
                info = _info_from_record(port, record, entry.path)
                if info is not None:
                    result.append(info)
        return result


def _parse(data: bytes) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def lease_live(record: dict[str, Any], now: float) -> bool:
    until = record.get("lease_until")
    return isinstance(until, (int, float)) and until > now


def _info_from_record(port: int, record: dict[str, Any], path: str) -> ReservationInfo | None:
    pid = record.get("pid")
    created = record.get("created")
    if not isinstance(pid, int) or not isinstance(created, (int, float)):
        return None
    started = record.get("process_started")
    name = record.get("name")
    lease_until = record.get("lease_until") if record.get("released") is not None else None
    return ReservationInfo(
        port=port,
        proto=str(record.get("proto", "tcp")),
        host=str(record.get("host", "127.0.0.1")),
        name=name if isinstance(name, str) else None,
        pid=pid,
        process_started=float(started) if isinstance(started, (int, float)) else None,
        created=float(created),
        lease_until=float(lease_until) if isinstance(lease_until, (int, float)) else None,
        guarded=bool(record.get("guarded", False)),
        lock_path=path,
    )


def _record_process_alive(record: dict[str, Any]) -> bool:
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    recorded = record.get("process_started")
    # A different start time means the pid was reused by an unrelated process.
    return _platform.system.same_process(
        pid, float(recorded) if isinstance(recorded, (int, float)) else None
    )
