"""Whether a started server is ready: listening on its port, or failed in a way worth saying
now rather than at the timeout.

:class:`Readiness` is asked again and again (every 20 ms) by one waiting loop, for one server
(:func:`localport.launch`) or many (:func:`localport.launch_services`). Each look answers
*ready*, *not yet*, or a failure with its reason:

- it exited before listening;
- something else listens on its port (a program outside localport bound it by number);
- its process tree listens somewhere else and, a second later, still not on its port: its
  command ignores ``{port}``. A debugger's or reloader's socket *beside* the right one is
  fine, since the right one is checked first. Asking where a tree listens reads every
  listening socket and every process's descriptors, so it is done four times a second, not
  on every look.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._addresses import url_host
from ._errors import LocalportError
from ._holders import listening, listening_sockets, pids_of
from ._wait import is_listening

if TYPE_CHECKING:
    from ._child import Child

#: How long a server's tree must listen elsewhere, and not on its port, before it is
#: reported: a server may open a side socket (a debugger, a reloader) a moment before its own.
ELSEWHERE_GRACE = 1.0
_ELSEWHERE_EVERY = 0.25


@dataclass(frozen=True)
class Failure:
    """Why a server will not become ready."""

    reason: str
    exit_code: int | None = None


class Readiness:
    """Looks at one starting server."""

    def __init__(self, child: Child, port: int, host: str, hint: str) -> None:
        """*hint* names what the command should use for its port (``{port}``...)."""
        self.child = child
        self.port = port
        self.host = host
        self.hint = hint
        self._elsewhere_since: float | None = None
        self._elsewhere_checked = 0.0

    def look(self) -> bool | Failure:
        """``True`` once it listens on its port, ``False`` while it may still, else why not."""
        if is_listening(self.port, self.host):
            foreign = self._foreign_listener()
            return Failure(foreign) if foreign else True
        code = self.child.poll()
        if code is not None:
            return Failure(f"exited with code {code} before listening", code)
        now = time.monotonic()
        if now - self._elsewhere_checked >= _ELSEWHERE_EVERY:
            self._elsewhere_checked = now
            elsewhere = self.listens_elsewhere()
            if not elsewhere:
                self._elsewhere_since = None
            elif self._elsewhere_since is None:
                self._elsewhere_since = now
            elif now - self._elsewhere_since >= ELSEWHERE_GRACE:
                return Failure(self._elsewhere_sentence(elsewhere))
        return False

    def _elsewhere_sentence(self, elsewhere: list[tuple[str, int]]) -> str:
        places = ", ".join(f"{address}:{port}" for address, port in elsewhere)
        if all(port == self.port for _, port in elsewhere):
            # The right port on another address: [::1] for 127.0.0.1, say.
            wanted = f"{url_host(self.host)}:{self.port}"
            return f"listens on {places}, not {wanted}: its command ignores {{host}}"
        return f"listens on {places}, not {self.port}: its command ignores {self.hint}"

    def timed_out(self, timeout: float) -> Failure:
        """The failure for a server that did not listen within *timeout* seconds."""
        reason = f"did not listen on it within {timeout:g} s"
        elsewhere = self.listens_elsewhere()
        if elsewhere:
            places = ", ".join(f"{address}:{port}" for address, port in elsewhere)
            reason += f"; it listens on {places} instead: pass {self.hint} to it"
        return Failure(reason)

    def _foreign_listener(self) -> str:
        """A sentence if the port's listener is not the server (or its children)."""
        found = listening_sockets(self.port, self.host)
        if not found:
            return ""  # asked by connecting (not Linux): the listener cannot be named
        pids = pids_of(found)
        if not pids or pids & self.child.tree():
            return ""  # unknown owner (another user's), or ours
        return (
            f"did not listen on it: PID {min(pids)} does, not the launched command (PID "
            f"{self.child.pid}); something outside localport bound the port by number"
        )

    def listens_elsewhere(self) -> list[tuple[str, int]]:
        """Where the server's process tree listens, while not where it should (Linux): each
        address (as a URL writes it) and port. Asked only after a look found it not ready."""
        try:
            tree = self.child.tree()
            return sorted(
                {
                    (holder.address_text, holder.local_address[1])
                    for holder in listening()
                    if holder.pid in tree and holder.local_address is not None
                }
            )
        except (OSError, LocalportError):
            return []
