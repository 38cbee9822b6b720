"""Files written whole or not at all: every report, config, state and model file of the project
goes through :func:`write_atomic`, so an interruption never leaves one half-written, and a write
that fails (a full disk, a file-size limit, a read-only folder) raises one ``OSError`` naming the
file and removes what it had begun. A writer killed outright (SIGKILL) cannot remove its
temporary file; the next write of the same file does, when that writer is gone."""

from __future__ import annotations

import errno
import glob
import io
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

__all__ = ["check_writable", "write_atomic", "write_in_child", "write_json", "write_serialized", "write_text"]

_FULL = {errno.EFBIG, errno.ENOSPC, errno.EDQUOT}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` as one line that names ``path`` (a failed ``write`` names no file)."""
    hint = ": the disk is full or a file-size limit was reached" if err.errno in _FULL else ""
    return OSError(err.errno, f"cannot write {path} ({err.strerror or err}{hint})")


def _host() -> str:
    return socket.gethostname().replace(".", "-")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def _remove_orphans(path: Path) -> None:
    """Temporary files of earlier writes of ``path`` whose writer, a process of this host, is gone
    (killed mid-write). Another host's, or a live writer's, are left alone."""
    host = _host()
    for orphan in path.parent.glob(glob.escape(path.name) + f".{glob.escape(host)}-*"):
        pid = orphan.name[len(path.name) + len(host) + 2 :].split(".", 1)[0]
        if pid.isdigit() and _gone(int(pid)):
            try:
                orphan.unlink(missing_ok=True)
            except OSError:  # not ours to remove (another user's folder): the write itself succeeded
                pass


def write_atomic(path, write: Callable[[str], Any]) -> None:
    """Call ``write(temporary_path)`` (a file beside ``path``) and rename the result onto ``path``.

    Raises:
        OSError: the file could not be written (one line naming ``path``); ``path`` is unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{_host()}-{os.getpid()}.", suffix=path.suffix, dir=path.parent)
    except OSError as err:
        raise _naming(err, path) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary new file (a temporary file is private)
        os.replace(tmp, path)
        _remove_orphans(path)
    except OSError as err:
        raise _naming(err, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_serialized(path, save: Callable[[BinaryIO], Any]) -> None:
    """:func:`write_atomic` for writers in C++ (``torch.save``, TorchScript's ``save``): they abort
    the whole process when a write fails (a full disk), so they write into memory and Python writes
    the bytes."""
    buffer = io.BytesIO()
    save(buffer)
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def write_in_child(path, write: Callable[[str], Any]) -> None:
    """:func:`write_atomic` for a C++ writer that takes only a file name (metatomic's ``save``):
    it runs in a forked child, so that the abort of a failed write (a full disk) ends the child,
    not this process. A Python error in the child comes back as ``RuntimeError`` (its first line).

    Raises:
        OSError: the writer was killed (one line naming ``path``); ``path`` is unchanged.
    """
    path = Path(path)

    def isolated(tmp: str) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write, report a Python error's first line, never return
            os.close(read_end)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # an abort's C++ trace is not the user's message
            code = 0
            try:
                write(tmp)
            except BaseException as err:  # every error goes back to the parent
                os.write(write_end, " ".join(_first_line(e) for e in (err, err.__cause__) if e).encode()[:1000])
                code = 1
            os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            error = pipe.read().decode(errors="replace")
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status):
            raise OSError(errno.EIO, f"the writer aborted (signal {os.WTERMSIG(status)}): is the disk full, or a file-size limit reached?")
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(error)

    write_atomic(path, isolated)


def check_writable(folder, what: str) -> None:
    """Raise one line when ``folder`` (existing or to be made) cannot be written, before long work
    starts; makes nothing.

    Raises:
        OSError: ``folder`` or its nearest existing parent is not a writable folder.
    """
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{what} {folder}: {existing} is not writable (permission denied)")


def write_text(path, text: str) -> None:
    """``text`` into ``path``, atomically."""
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, values: Any, indent: int = 1) -> None:
    """``values`` as JSON into ``path``, atomically."""
    write_text(path, json.dumps(values, indent=indent))
