"""A character corpus from the source of Python's standard library: no download, on every machine.

Chapter 7, book/07_modern_architectures.md. The text is the top-level ``.py`` files of the
running interpreter's standard library (``sysconfig.get_paths()["stdlib"]``; no packages, no
tests, no site-packages), so it differs a little between Python versions (3.11 and 3.12 ship
different files). Each file goes, whole, to one side of a fixed split:

* validation: the files whose name has a CRC-32 divisible by ``VALIDATION_EVERY`` (about one in
  ten), a rule that does not depend on which other files exist;
* training: the other files, in the order of their names' CRC-32 (a fixed shuffle), so a short
  training text is a few whole files from across the library rather than those starting with
  ``_``.

``load_corpus(n_train, n_val)`` returns the first ``n_train`` training and ``n_val`` validation
characters, encoded as read-only ``uint8`` arrays of ids: ``ALPHABET`` (newline and the 95
printable ASCII characters) and one id, ``UNKNOWN``, for every other character (tabs, non-ASCII).
"""

from __future__ import annotations

import functools
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validate import check_count

ALPHABET = "\n" + "".join(chr(code) for code in range(32, 127))
UNKNOWN = len(ALPHABET)  # the id of every character outside ALPHABET
VOCAB_SIZE = len(ALPHABET) + 1
UNKNOWN_CHAR = "\N{REPLACEMENT CHARACTER}"  # what ``decode`` writes for UNKNOWN
VALIDATION_EVERY = 10

_LOOKUP = np.full(128, UNKNOWN, dtype=np.uint8)  # ASCII code -> id
_LOOKUP[[ord(char) for char in ALPHABET]] = np.arange(len(ALPHABET), dtype=np.uint8)


@dataclass(frozen=True)
class Corpus:
    """Encoded text: read-only ``uint8`` ids, ``train`` of shape (n_train,), ``val`` (n_val,)."""

    train: np.ndarray
    val: np.ndarray


def _name_hash(path: Path) -> int:
    return zlib.crc32(path.name.encode())


def stdlib_files() -> tuple[Path, ...]:
    """The top-level ``.py`` files of the running Python's standard library, sorted by name."""
    return tuple(sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")))


def is_validation_file(path: Path) -> bool:
    """True if ``path`` belongs to the validation side of the split (by its name alone)."""
    return _name_hash(path) % VALIDATION_EVERY == 0


def encode(text: str) -> np.ndarray:
    """Read-only ``uint8`` ids of shape (len(text),); characters outside ALPHABET -> UNKNOWN."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # one code point each
    ids = np.where(codes < 128, _LOOKUP[np.minimum(codes, 127)], UNKNOWN).astype(np.uint8)
    ids.flags.writeable = False
    return ids


def decode(ids: np.ndarray) -> str:
    """The text of an array of ids (any integer dtype); UNKNOWN becomes ``UNKNOWN_CHAR``."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > UNKNOWN):
        raise ValueError(f"ids must be in [0, {UNKNOWN}], but got values outside it")
    return "".join(ALPHABET[i] if i < UNKNOWN else UNKNOWN_CHAR for i in ids.tolist())


@functools.cache
def _encoded_split() -> Corpus:
    """All training and all validation text, encoded (read once per process)."""
    files = stdlib_files()
    train = sorted((f for f in files if not is_validation_file(f)), key=_name_hash)
    val = [f for f in files if is_validation_file(f)]

    def joined(paths: list[Path]) -> np.ndarray:
        return encode("".join(path.read_text(encoding="utf-8") for path in paths))

    return Corpus(train=joined(train), val=joined(val))


def available_chars() -> tuple[int, int]:
    """How many (training, validation) characters the running Python's library offers."""
    corpus = _encoded_split()
    return len(corpus.train), len(corpus.val)


def load_corpus(n_train: int, n_val: int) -> Corpus:
    """The first ``n_train`` training and ``n_val`` validation characters, encoded.

    Args:
        n_train: training characters, in [1, available_chars()[0]].
        n_val: validation characters, in [1, available_chars()[1]].

    Returns:
        A ``Corpus`` of read-only views of the cached arrays; the same call gives the same text.
    """
    full = _encoded_split()
    n_train = check_count(n_train, "n_train", 1, len(full.train))
    n_val = check_count(n_val, "n_val", 1, len(full.val))
    return Corpus(train=full.train[:n_train], val=full.val[:n_val])
