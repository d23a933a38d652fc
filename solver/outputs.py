"""Output paths, checked before any work: a bad ``--csv``, ``--plot`` or ``--out`` costs nothing and names itself.

Why: a frontier or a sweep can take minutes; failing afterwards on a folder that is a file, or on a
plot suffix matplotlib cannot write, throws that work away, and matplotlib's own message does not
say which option was wrong.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from infecon.formulations.errors import InfeconError

DEFAULT_PLOT_SUFFIX = ".png"


def _refuse_file_on_the_way(option: str, path: Path) -> None:
    """Raise if an existing regular file stands where a folder of ``path`` must be (``file/out.csv``)."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InfeconError(f"{option}: '{ancestor}' is a file, not a folder, so '{path}' cannot be created")
            return


def _ensure_folder(option: str, folder: Path) -> None:
    """Create ``folder``, or raise naming ``option`` if it cannot exist or be written."""
    _refuse_file_on_the_way(option, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InfeconError(f"{option}: cannot create the folder '{folder}' ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise InfeconError(f"{option}: the folder '{folder}' is not writable")


def _ensure_parent(option: str, path: Path) -> None:
    """Create ``path``'s folder, or raise naming ``option`` if it cannot exist or be written."""
    _ensure_folder(option, path.parent)


def output_file(option: str, text: str) -> Path:
    """A file path for ``option``, its folder created: not empty, not an existing folder, writable."""
    if not text.strip():
        raise InfeconError(f"{option}: needs a file path, got ''")
    path = Path(text)
    if path.is_dir():
        raise InfeconError(f"{option}: '{path}' is a folder; give a file path such as {path / 'out.csv'}")
    _ensure_parent(option, path)
    return path


def plot_formats() -> list[str]:
    """The file suffixes matplotlib can write (without the dot), e.g. ``png``, ``pdf``, ``svg``."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def plot_file(option: str, text: str) -> Path:
    """A plot path whose suffix names a format matplotlib writes; no suffix means ``.png``, said in the path.

    Why: matplotlib itself appends ``.png`` to a bare name, so printing the name as given would point
    at a file that does not exist.
    """
    path = output_file(option, text)
    if not path.suffix:
        return path.with_name(path.name + DEFAULT_PLOT_SUFFIX)
    suffix = path.suffix.lower().lstrip(".")
    formats = plot_formats()
    if suffix not in formats:
        raise InfeconError(f"{option}: cannot write a '.{suffix}' plot (formats: {', '.join(formats)}), "
                           f"got '{text}'")
    return path


def output_folder(option: str, text: str) -> Path:
    """A folder for ``option``, created if missing: not an existing file, writable."""
    if not text.strip():
        raise InfeconError(f"{option}: needs a folder path, got ''")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InfeconError(f"{option}: '{path}' exists and is not a folder")
    _ensure_folder(option, path)
    return path


# ---------------------------------------------------------------- nothing lost


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (same suffix); on success rename it onto ``path``, else remove it.

    Why: writing in place leaves a truncated file when the run is interrupted (Ctrl-C) or the disk fills up,
    and the previous output is lost too. A rename within one folder is atomic on POSIX and Windows
    (``os.replace``), so ``path`` holds either the old file or the whole new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``path`` (``replacing``); an ``OSError`` is one line."""
    try:
        with replacing(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise InfeconError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Path(path)


def write_together(writers: Mapping[Path, Callable[[Path], object]]) -> list[Path]:
    """Write several files as one output: each ``writer(tmp)`` to a temporary file beside its path, then rename
    them all into place; if any writer fails, none is renamed and every temporary file is removed.

    Why: a plan's files (CSV, Parquet, summary, plot) describe one answer; a run that fails half-way must not
    leave a new CSV beside an old summary. Errors (``OSError``, ``ValueError``) propagate to the caller.
    """
    with contextlib.ExitStack() as stack:
        staged = [(stack.enter_context(replacing(path)), path, write) for path, write in writers.items()]
        for tmp, _, write in staged:
            write(tmp)
    return list(writers)


def refuse_clashes(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None] = {}) -> None:
    """Raise if two outputs are one file, or an output is an input: a run must never write over what it reads.

    Args:
        outputs: option (``--csv``) -> the path it writes (None: not given).
        inputs: option (``--data``) -> the path it reads (None: not given, or a built-in name).
    """
    seen: dict[str, str] = {}
    for option, path in inputs.items():
        if path is not None and Path(path).is_file():
            seen.setdefault(os.path.realpath(path), option)
    for option, path in outputs.items():
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            other = seen[key]
            kind = "the input of" if other in inputs else "also the output of"
            raise InfeconError(f"{option}: '{path}' is {kind} {other}; give another path (it would be overwritten)")
        seen[key] = option
