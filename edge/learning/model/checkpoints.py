"""The checkpoint file: what a model's ``save`` writes and its ``load`` reads back, never half-read.

A checkpoint is a magic line, a JSON header (format version, kind, River series, digest, payload
length) and a pickle of the model. With a key the digest is an HMAC-SHA256, so :func:`read_checkpoint`
(given the same key) never unpickles a file someone else wrote; without one, a SHA-256 checksum that
catches corruption only. Anything wrong is a :class:`CheckpointError` naming the file.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.ckpt"
    >>> write_checkpoint({"labels": 3}, path, kind="example", key=b"k")
    >>> read_checkpoint(path, dict, kind="example", key=b"k")
    {'labels': 3}
    >>> read_checkpoint(path, dict, kind="example")
    Traceback (most recent call last):
    ...
    edge.learning.model.checkpoints.CheckpointError: checkpoint ...: digest is 'hmac-sha256', expected sha256
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pickle
import tempfile
from pathlib import Path
from typing import TypeVar

import orjson
import river

from edge.core.errors import EdgeError

__all__ = [
    "CheckpointError",
    "CHECKPOINT_FORMAT",
    "write_checkpoint",
    "write_atomically",
    "read_checkpoint",
    "checkpoint_bytes",
    "from_checkpoint_bytes",
]

T = TypeVar("T")


class CheckpointError(EdgeError, ValueError):
    """A checkpoint that cannot be restored (missing, corrupt, tampered with or incompatible); names the file."""


#: Bump when the pickled state's layout changes; older files are refused, never half-read.
CHECKPOINT_FORMAT = 1
_MAGIC = b"EDGE-CHECKPOINT\n"
_MAX_HEADER = 4096


def _river_series() -> str:
    return ".".join(river.__version__.split(".")[:2])


def checkpoint_bytes(obj: object, *, kind: str, key: bytes | None = None) -> bytes:
    """``obj`` as the bytes of a checkpoint of ``kind`` (what :func:`write_checkpoint` writes to its file).

    A fleet's model snapshots travel through Redis in this form (edge.state).

        >>> data = checkpoint_bytes([1, 2], kind="example", key=b"k")
        >>> from_checkpoint_bytes(data, list, kind="example", key=b"k", name="redis key edge:model")
        [1, 2]
    """
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "river": _river_series(),
        "digest": "hmac-sha256" if key else "sha256",
        "mac": _digest(payload, key),
        "length": len(payload),
    }
    return _MAGIC + orjson.dumps(header) + b"\n" + payload


def from_checkpoint_bytes(data: bytes, expected: type[T], *, kind: str, key: bytes | None = None, name: str = "<bytes>") -> T:
    """The ``expected`` object in checkpoint bytes, verified before anything is unpickled (as :func:`read_checkpoint`).

    ``name`` says where the bytes came from in a :class:`CheckpointError`.
    """
    payload = _verified_payload(name, data, kind, key)
    try:
        obj = pickle.loads(payload)  # noqa: S301 - verified digest above
    except Exception as exc:
        raise CheckpointError(f"checkpoint {name}: incompatible contents ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, expected):
        raise CheckpointError(f"checkpoint {name}: holds a {type(obj).__name__}, not a {expected.__name__}")
    return obj


def write_checkpoint(obj: object, path: str | os.PathLike[str], *, kind: str, key: bytes | None = None) -> None:
    """Write ``obj`` as a checkpoint of ``kind`` atomically (temp file in the same directory, fsync, rename)."""
    write_atomically(checkpoint_bytes(obj, kind=kind, key=key), path)


def write_atomically(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` (a checkpoint's bytes) to ``path`` atomically: temp file in the same directory, fsync, rename.

    Apart from :func:`checkpoint_bytes` so that a server can take the bytes where nothing changes the
    object meanwhile (its event loop) and leave only the disk to a thread.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_checkpoint(path: str | os.PathLike[str], expected: type[T], *, kind: str, key: bytes | None = None) -> T:
    """The ``expected`` object a checkpoint of ``kind`` holds; :class:`CheckpointError` (naming the file) if it can't.

    The digest is verified before anything is unpickled. A file written with a key needs
    the key; a keyless file is refused when a key is given (it could have been forged).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot read ({exc.strerror or exc})") from exc
    return from_checkpoint_bytes(data, expected, kind=kind, key=key, name=str(path))


def _verified_payload(path: Path | str, data: bytes, kind: str, key: bytes | None) -> bytes:
    """The pickle in ``data`` once its header and digest check out."""
    if not data.startswith(_MAGIC):
        raise CheckpointError(f"checkpoint {path}: not an edge checkpoint (bad magic)")
    end = data.find(b"\n", len(_MAGIC), len(_MAGIC) + _MAX_HEADER)
    if end < 0:
        raise CheckpointError(f"checkpoint {path}: corrupt header")
    try:
        header = orjson.loads(data[len(_MAGIC) : end])
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: corrupt header") from exc
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path}: corrupt header")
    if header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: incompatible format {header.get('format')!r} (this edge reads {CHECKPOINT_FORMAT})"
        )
    if header.get("river") != _river_series():
        raise CheckpointError(
            f"checkpoint {path}: written with River {header.get('river')!r}, this edge runs {_river_series()}"
        )
    payload = data[end + 1 :]
    if header.get("length") != len(payload):
        raise CheckpointError(f"checkpoint {path}: truncated ({len(payload)} of {header.get('length')} bytes)")
    expected_kind = "hmac-sha256" if key else "sha256"
    if header.get("digest") != expected_kind:
        raise CheckpointError(f"checkpoint {path}: digest is {header.get('digest')!r}, expected {expected_kind}")
    mac = header.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _digest(payload, key)):
        raise CheckpointError(f"checkpoint {path}: digest mismatch (corrupt or tampered with)")
    return payload


def _digest(payload: bytes, key: bytes | None) -> str:
    if key:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()

