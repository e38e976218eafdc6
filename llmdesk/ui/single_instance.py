"""One window per llmdesk home: a second start raises the first window and exits.

Two windows would share settings, saved chats and port 8000. The first window listens on a local
socket named after its state folder (QLocalServer: a Unix socket only this user can open); a later
start that reaches it asks it to come to the front and ends. The CLI never takes part: `llmdesk
gpus`, `llmdesk chat` and the rest run beside the window.
"""

from __future__ import annotations

import hashlib
import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from llmdesk.core.base import paths

log = logging.getLogger(__name__)

RAISE = b"raise\n"
CONNECT_TIMEOUT_MS = 500


def socket_name() -> str:
    """Per user (the socket's permissions) and per llmdesk home (LLMDESK_HOME keeps homes apart)."""
    digest = hashlib.sha256(str(paths.state_dir().resolve()).encode()).hexdigest()[:16]
    return f"llmdesk-window-{digest}"


def ask_running_window_to_raise() -> bool:
    """True if a window of this home answered (and was asked to come to the front)."""
    sock = QLocalSocket()
    sock.connectToServer(socket_name())
    if not sock.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    sock.write(RAISE)
    sock.flush()
    sock.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    sock.disconnectFromServer()
    return True


class InstanceServer(QObject):
    """Listens for later starts; emits raise_requested for each."""

    raise_requested = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        name = socket_name()
        if self._server.listen(name):
            return True
        # A socket file left by a window that was killed: nobody answered on it, so it is stale.
        QLocalServer.removeServer(name)
        if self._server.listen(name):
            return True
        log.warning("could not listen for later starts on %s: %s", name, self._server.errorString())
        return False

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while (conn := self._server.nextPendingConnection()) is not None:
            conn.readyRead.connect(lambda c=conn: self._read(c))
            conn.disconnected.connect(conn.deleteLater)

    def _read(self, conn: QLocalSocket) -> None:
        if bytes(conn.readAll().data()).startswith(RAISE.strip()):
            log.info("a second start of llmdesk asked this window to come to the front")
            self.raise_requested.emit()
