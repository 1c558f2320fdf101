"""Files: reading feature arrays (.npy, .npz, .pt, .csv/.tsv/.txt) and writing every artefact atomically.

Writes go to a temporary file in the target folder, are fsync'ed, then renamed with ``os.replace``, so a reader
never sees a half-written file, even if the run is killed mid-write. Written files get the mode of any new file
(0o666 less the process umask)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core._files import atomic_write
from .errors import UnknownKeyError, UserInputError, require

__all__ = [
    "FeatureFileNotice",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_features",
    "save_npz",
    "save_torch",
    "to_jsonable",
    "write_csv",
    "write_json",
]

SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv", ".tsv", ".txt")
INDEX_COLUMN_CHOICES = ("auto", "drop", "keep")
# first header field of a pandas ``DataFrame.to_csv()`` index column (unnamed index; as read back by pandas)
_INDEX_HEADERS = ("", "unnamed: 0")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", None: "whitespace"}


class FeatureFileNotice(UserWarning):
    """Something ccalens did to a feature file's contents that the user should know (e.g. an index column
    dropped). The command line prints it as a ``note:`` line."""


def _pick(mapping: Mapping[str, Any], key: str | None, path: Path) -> Any:
    if key is not None:
        if key not in mapping:
            raise UnknownKeyError(f"{path} has no array named {key!r} (--key / key=); it has {sorted(mapping)}")
        return mapping[key]
    if len(mapping) != 1:
        raise UserInputError(f"{path} holds several arrays {sorted(mapping)}: choose one with --key / key=")
    return next(iter(mapping.values()))


# ------------------------------------------------------------------------------------------- text files
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]


def _guess_delimiter(line: str) -> str | None:
    """The field separator of a text table from its first line: tab, semicolon, comma, else whitespace."""
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return delimiter
    return None


def _first_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The first ``count`` lines that are neither blank nor ``#`` comments, and the line number (0-based) of the
    first of them."""
    found: list[str] = []
    first_at = 0
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not found:
                first_at = number
            found.append(line.rstrip("\r\n"))
            if len(found) == count:
                break
    return found, first_at


def _bad_line(path: Path, delimiter: str | None, start: int, n_fields: int, usecols: Sequence[int]) -> str:
    """Describe the first line from ``start`` (0-based) on that is not ``n_fields`` numbers."""
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh):
            if number < start or not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = _split(line.rstrip("\r\n"), delimiter)
            if len(fields) != n_fields:
                return f"line {number + 1} has {len(fields)} fields, expected {n_fields}"
            for column in usecols:
                if not _is_number(fields[column]):
                    value = fields[column][:40]
                    return f"line {number + 1}, column {column + 1}: {value!r} is not a number"
    return "a line could not be parsed"


def _load_text(path: Path, index_column: str = "auto") -> np.ndarray:
    """A numeric table ``(n_samples, n_features)`` from CSV/TSV/whitespace text (``np.savetxt``,
    ``DataFrame.to_csv``): an optional header row, optional ``#`` comments, an optional index column."""
    try:
        lines, first_at = _first_lines(path, 2)
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not a UTF-8 text table (binary data under a text suffix?)") from None
    if not lines:
        raise UserInputError(f"{path} holds no data (empty, or only comments)")
    delimiter = _guess_delimiter(lines[0])
    fields = _split(lines[0], delimiter)
    numeric = all(_is_number(f) for f in fields)
    # pandas' default column names "0,1,...,d-1" (``to_csv(index=False)``) above rows that are not integers
    default_names = (numeric and len(fields) >= 2 and fields == [str(i) for i in range(len(fields))]
                     and len(lines) > 1 and not all(f.lstrip("+-").isdigit() for f in _split(lines[1], delimiter)))
    has_header = not numeric or default_names
    notices = [f"{path}: first line {lines[0][:60]!r} read as column names"] if default_names else []
    n_fields = len(fields)
    drop_first = index_column == "drop"
    if index_column == "auto" and has_header and fields[0].strip().lower() in _INDEX_HEADERS and n_fields >= 2:
        try:
            labels = np.loadtxt(path, delimiter=delimiter, skiprows=first_at + 1, usecols=[0], dtype=str,
                                comments="#", encoding="utf-8-sig", ndmin=1)
        except ValueError:
            where = _bad_line(path, delimiter, first_at + 1, n_fields, [])
            raise UserInputError(f"{path}: {where} (expected a table separated by "
                                 f"{_DELIMITER_NAMES[delimiter]})") from None
        values = [s.strip().strip('"') for s in labels.tolist()]
        n = len(values)
        first = next((start for start in (0, 1) if values == [str(i) for i in range(start, n + start)]), None)
        if first is None:
            raise UserInputError(
                f"{path}: the first column has an empty header ({fields[0]!r}) like a pandas index, but its values "
                "are not 0..n-1; drop it with --index-column drop (index_column='drop') if it holds row labels, "
                "or keep it with --index-column keep if it is a feature"
            )
        drop_first = True
        notices.append(f"{path}: dropped the first column, an index {first}..{n - 1 + first} (pandas to_csv, "
                       "R write.csv); use --index-column keep to keep it")
    if drop_first and n_fields < 2:
        raise UserInputError(f"{path}: cannot drop the index column of a one-column table")
    usecols = list(range(1 if drop_first else 0, n_fields))
    skip = first_at + 1 if has_header else first_at
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy's "input contained no data": checked below
            data = np.loadtxt(path, delimiter=delimiter, skiprows=skip, usecols=usecols, ndmin=2, comments="#",
                              encoding="utf-8-sig", dtype=np.float64,
                              quotechar=None if delimiter is None else '"')
    except ValueError:
        where = _bad_line(path, delimiter, skip, n_fields, usecols)
        raise UserInputError(f"{path}: {where} (expected a table of numbers separated by "
                             f"{_DELIMITER_NAMES[delimiter]})") from None
    if data.shape[0] == 0:
        raise UserInputError(f"{path} has a header but no data rows")
    for notice in notices:
        warnings.warn(FeatureFileNotice(notice), stacklevel=3)
    return data


# ---------------------------------------------------------------------------------------------- containers
def _torch_load_failure(path: Path, exc: Exception) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if not magic:
        return f"{path} is empty (expected a file written by torch.save)"
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):
        return f"{path} is not a torch file (torch.save writes a zip archive)"
    text = str(exc)
    if text.startswith("Weights only load failed"):  # torch's weights_only unpickler met a non-tensor object
        lines = [ln.strip() for ln in text.replace("WeightsUnpickler error:", "\n").splitlines()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or ln.startswith("Unsupported")), "").rstrip(".")
        return (f"{path} holds objects other than tensors ({detail.split('. ')[0][:160]}); only tensors and dicts of "
                "tensors are read, and nothing in the file is run")
    reason = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return f"{path} is damaged or truncated ({reason.split('. ')[0][:160]})"


def _load_torch(path: Path, key: str | None) -> np.ndarray:
    torch = require("torch", f"reading {path}")
    try:
        # weights_only: tensors and plain containers only, nothing in the file is executed
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... for a damaged file
        raise UserInputError(_torch_load_failure(path, exc)) from exc
    if isinstance(obj, Mapping):
        obj = _pick(obj, key, path)
    if not isinstance(obj, torch.Tensor):
        raise UserInputError(f"{path} must hold a tensor (or a dict of tensors), got {type(obj).__name__}")
    tensor = obj.detach().cpu()
    if tensor.is_sparse:
        tensor = tensor.to_dense()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
        tensor = tensor.to(torch.float32)  # bfloat16, float8: numpy has no such type; float32 holds them exactly
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError) as exc:
        raise UserInputError(f"{path}: a tensor of dtype {tensor.dtype} cannot be read as features") from exc


def _load_numpy(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as f:
            return np.asarray(_pick({k: f[k] for k in f.files}, key, path))
    except UserInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserInputError(f"{path} is not a readable {path.suffix.lower()} file of numbers: {reason}") from exc


def load_features(path: str | Path, key: str | None = None, *, index_column: str = "auto") -> np.ndarray:
    """Load a feature array ``(n_samples, ...)`` from .npy, .npz, .pt/.pth (torch) or .csv/.tsv/.txt.

    For containers (.npz, a .pt dict) ``key`` names the array; it may be omitted if there is only one.
    torch bfloat16 (and float8) tensors are widened to float32. Text tables may have a header row and ``#``
    comments; fields are separated by commas, semicolons, tabs or whitespace. ``index_column``: ``"auto"``
    drops a pandas index column (empty or ``Unnamed: 0`` header, values 0..n-1) with a
    :class:`FeatureFileNotice` and refuses an empty-headed first column with other values; ``"drop"`` always
    drops the first column, ``"keep"`` never does.
    """
    path = Path(path)
    if index_column not in INDEX_COLUMN_CHOICES:
        raise UserInputError(f"index_column must be one of {INDEX_COLUMN_CHOICES}, got {index_column!r}")
    if path.is_dir():
        raise UserInputError(f"{path} is a folder; expected a feature file ({', '.join(SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"no such feature file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _load_numpy(path, key)
    if suffix in (".pt", ".pth"):
        return _load_torch(path, key)
    if suffix in (".csv", ".txt", ".tsv"):
        return _load_text(path, index_column)
    raise UserInputError(f"unsupported feature file {path}: expected one of {', '.join(SUFFIXES)}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, paths and dataclass-like objects to plain JSON types.

    Non-finite floats become ``None`` (strict JSON has no NaN).
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer | int):
        return int(obj)
    if isinstance(obj, np.floating | float):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (after :func:`to_jsonable`) as indented strict JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write a list of flat dicts as CSV (header = ``columns`` or the keys in first-seen order), atomically."""
    rows = [dict(r) for r in rows]
    if columns is None:
        seen: dict[str, None] = {}
        for r in rows:
            for key in r:
                seen.setdefault(key, None)
        columns = list(seen)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(value: Any) -> Any:
    value = to_jsonable(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else value


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path`` atomically."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically (torch imported here only)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
