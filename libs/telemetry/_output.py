"""Batched log output: one ``write()`` per ~100 ms or 64 KiB instead of one per line.

A line per RPC, each written and flushed, costs a system call on the event-loop thread
per request. Here lines are collected and a daemon thread writes them out, so the loop
only appends to a list. Lines at WARNING and above are written at once (with whatever
is queued before them, keeping order), and the buffer is flushed at interpreter exit;
a hard crash can lose at most the last interval's INFO lines.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import TextIO

_MAX_BYTES = 64 * 1024
_INTERVAL_S = 0.1


class BufferedLineWriter:
    """Collects lines for one stream and writes them in order, in batches."""

    def __init__(self, stream: TextIO, *, interval_s: float = _INTERVAL_S) -> None:
        self.stream = stream
        self._interval_s = interval_s
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        # Taken before the buffer lock is released, so batches reach the stream in order.
        self._emit_lock = threading.Lock()
        threading.Thread(target=self._flush_periodically, name="furima-log-flush", daemon=True).start()
        atexit.register(self.flush)

    def write_line(self, line: str) -> None:
        """Queue one line (without its newline); write the batch once it is large."""
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if self._size < _MAX_BYTES:
                return
            self._emit_lock.acquire()
            text = self._take()
        self._emit(text)

    def flush(self) -> None:
        """Write everything queued so far."""
        with self._lock:
            if not self._lines:
                return
            self._emit_lock.acquire()
            text = self._take()
        self._emit(text)

    def _take(self) -> str:
        text = "\n".join(self._lines) + "\n"
        self._lines = []
        self._size = 0
        return text

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream (e.g. at exit): nowhere to report it
            pass
        finally:
            self._emit_lock.release()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self._interval_s)
            self.flush()


class BufferedLogger:
    """A structlog output logger over a `BufferedLineWriter`; WARNING and above flush at once."""

    def __init__(self, writer: BufferedLineWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        """Queue a line."""
        self._writer.write_line(message)

    def urgent(self, message: str) -> None:
        """Queue a line and write everything out now."""
        self._writer.write_line(message)
        self._writer.flush()

    log = debug = info = msg
    warn = warning = err = error = critical = fatal = exception = failure = urgent


class WriterStream:
    """The file-like face of a `BufferedLineWriter`, for a stdlib ``StreamHandler``."""

    def __init__(self, writer: BufferedLineWriter) -> None:
        self._writer = writer

    def write(self, text: str) -> int:
        """Queue one formatted record (the handler appends the newline)."""
        self._writer.write_line(text.removesuffix("\n"))
        return len(text)

    def flush(self) -> None:
        """Write out now: stdlib records are rare and often matter."""
        self._writer.flush()


_writers: dict[int, BufferedLineWriter] = {}
_writers_lock = threading.Lock()


def buffered_writer(stream: TextIO) -> BufferedLineWriter:
    """Return the one writer for ``stream``, so reconfiguring never starts another thread."""
    with _writers_lock:
        writer = _writers.get(id(stream))
        if writer is None or writer.stream is not stream:
            writer = _writers[id(stream)] = BufferedLineWriter(stream)
        return writer
