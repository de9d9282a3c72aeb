"""Many input files at once: glob patterns, manifests, and pairing logits with labels.

``lossctl ce 'logits-*.npy' labels-*.npy`` gets its first pattern unexpanded (quoted)
and the second expanded by the shell, in the shell's order (``-10`` before ``-2``).
Shards are therefore paired by the part of their names that varies (``logits-7.npy``
with ``labels-7.npy``), not by position, whenever those parts match one to one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence

from lossctl.errors import InputError, ReadError
from lossctl.io.sources import not_regular, open_input, resolve_spec

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str) -> list[str | int]:
    """Sort key that puts ``shard-2`` before ``shard-10``."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(path)]


_GLOB_MAGIC = re.compile("[*?[]")  # glob.has_magic's test


def expand(specs: Sequence[str]) -> list[str]:
    """Each spec as given, or its matches in natural order when it is a glob pattern.

    A spec that names an existing file (or is ``-``) is never expanded; one that starts
    with ``[`` and matches no file is inline JSON text, passed on as it is.
    """
    paths: list[str] = []
    for spec in specs:
        if spec == "-" or os.path.exists(spec) or not _GLOB_MAGIC.search(spec):
            paths.append(spec)
            continue
        import glob  # only for a pattern (0.5 ms of start-up otherwise)

        matches = sorted(glob.glob(spec), key=natural_key)
        if not matches and spec.lstrip().startswith("["):
            paths.append(spec)  # inline JSON, such as '[[1,2,3]]'
            continue
        if not matches:
            raise ReadError(spec, "no file matches this pattern")
        paths.extend(matches)
    return paths


def varying_parts(paths: Sequence[str]) -> list[str]:
    """What is left of each path once the prefix and suffix common to all are removed."""
    if len(paths) < 2:
        return list(paths)
    prefix = _common_prefix(paths)
    suffix = _common_prefix([p[len(prefix) :][::-1] for p in paths])[::-1]
    return [p[len(prefix) : len(p) - len(suffix)] for p in paths]


def _common_prefix(texts: Sequence[str]) -> str:
    """The longest string every text starts with, compared character by character."""
    first, last = min(texts), max(texts)
    length = 0
    while length < len(first) and first[length] == last[length]:
        length += 1
    return first[:length]


def pair(inputs: Sequence[str], labels: Sequence[str]) -> list[tuple[str, str]]:
    """Pair each input with its labels file: by the varying part of the names, else in order."""
    if len(inputs) != len(labels):
        raise InputError(
            f"{len(inputs)} input files but {len(labels)} label files; give one labels file per "
            "input (quote glob patterns, e.g. 'logits-*.npy' 'labels-*.npy')"
        )
    input_keys, label_keys = varying_parts(inputs), varying_parts(labels)
    if len(set(input_keys)) == len(inputs) and set(input_keys) == set(label_keys):
        by_key = dict(zip(label_keys, labels, strict=True))
        return [(path, by_key[key]) for path, key in zip(inputs, input_keys, strict=True)]
    return list(zip(inputs, labels, strict=True))


def split_arguments(arguments: Sequence[str]) -> list[tuple[str, str]]:
    """``INPUT LABELS`` (each possibly a glob pattern), or ``INPUTS… LABELS…`` split in half."""
    if len(arguments) == 2:
        return pair(expand(arguments[:1]), expand(arguments[1:]))
    paths = expand(arguments)
    if len(paths) % 2:
        raise InputError(
            f"{len(paths)} files given: give the input files, then as many label files "
            "(or a --manifest)"
        )
    half = len(paths) // 2
    return pair(paths[:half], paths[half:])


def _by_name(groups: Sequence[Sequence[str]]) -> bool:
    """Whether every group's varying name parts are distinct and the same set as the first's."""
    keys = [varying_parts(group) for group in groups]
    first = set(keys[0])
    return len(first) == len(keys[0]) and all(set(k) == first for k in keys[1:])


def pair_groups(groups: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """One tuple per shard from equally long groups (``REF…``, ``OTHER…``, ``LABELS…``):
    matched by the varying part of the names when that works, else in order."""
    lengths = [len(group) for group in groups]
    if len(set(lengths)) != 1:
        raise InputError(
            f"the file groups have {', '.join(map(str, lengths))} files; give one file per shard "
            "in each group (quote glob patterns, e.g. 'ref-*.npy' 'other-*.npy')"
        )
    if lengths[0] > 1 and _by_name(groups):
        lookup = [dict(zip(varying_parts(g), g, strict=True)) for g in groups[1:]]
        keys = varying_parts(groups[0])
        return [
            (path, *(table[key] for table in lookup))
            for path, key in zip(groups[0], keys, strict=True)
        ]
    return list(zip(*groups, strict=True))


def split_groups(arguments: Sequence[str], sizes: Sequence[int]) -> list[tuple[str, ...]]:
    """``A B [C]`` (each possibly a glob pattern) or ``A… B… [C…]`` split into equal groups.

    ``sizes`` are the allowed numbers of groups (``(2, 3)`` for ``kl``). With one argument
    per group each is expanded on its own; a longer list is split into the number of groups
    whose names pair up, and refused when that is ambiguous.
    """
    if len(arguments) in sizes:
        return pair_groups([expand([spec]) for spec in arguments])
    paths = expand(arguments)
    fitting = [k for k in sizes if len(paths) % k == 0 and len(paths) >= k]
    if not fitting:
        raise InputError(
            f"{len(paths)} files given: give the same number of files in each of "
            f"{' or '.join(map(str, sizes))} groups"
        )
    if len(fitting) > 1:
        named = [k for k in fitting if _by_name(_chunks(paths, k))]
        if len(named) != 1:
            shown = " or ".join(f"{k} groups of {len(paths) // k}" for k in fitting)
            raise InputError(
                f"{len(paths)} files could be {shown}; quote one glob pattern per group "
                "(e.g. 'ref-*.npy' 'other-*.npy' 'labels-*.npy')"
            )
        fitting = named
    return pair_groups(_chunks(paths, fitting[0]))


def _chunks(paths: Sequence[str], groups: int) -> list[list[str]]:
    size = len(paths) // groups
    return [list(paths[i * size : (i + 1) * size]) for i in range(groups)]


def read_manifest(path: str) -> list[tuple[str, str]]:
    """``INPUT LABELS`` per line (whitespace, tab or comma separated; ``#`` comments).

    Relative paths are taken relative to the manifest's folder; the manifest may be a
    FIFO (``--manifest <(ls …)``), whose relative paths are taken from the current one.
    Every path listed is checked as a command-line path is, and refused naming its
    manifest line: a missing file, a directory, a device or a socket. A FIFO listed is
    read like one given on the command line when its shard's turn comes (a writer must
    be there within ``LOSSCTL_FIFO_WAIT``).
    """
    opened = open_input(path, path)
    try:
        if isinstance(opened, bytes):  # a FIFO: its folder (/dev/fd) means nothing
            lines, base = opened.decode("utf-8").splitlines(), ""
        else:
            with opened as handle:
                lines, base = handle.read().decode("utf-8").splitlines(), os.path.dirname(path)
    except UnicodeDecodeError as error:
        raise ReadError(path, f"cannot read the manifest: {error}") from None
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f for f in re.split(r"[\s,]+", text) if f]
        if len(fields) != 2:
            raise ReadError(
                path, f"line {number}: expected two paths (input and labels), found {len(fields)}"
            )
        listed = (os.path.join(base, fields[0]), os.path.join(base, fields[1]))
        for spec in listed:
            _check_listed(spec, path, number)
        pairs.append(listed)
    if not pairs:
        raise ReadError(path, "the manifest lists no files")
    return pairs


def _check_listed(spec: str, manifest: str, number: int) -> None:
    """A listed path (or ``PATH:KEY``) that is no file to read, refused with its line."""
    where = f"line {number}: {spec}"
    try:
        path = resolve_spec(spec, None)[0]
        mode = os.stat(path).st_mode
    except ReadError as error:
        raise ReadError(manifest, f"line {number}: {error}") from None
    except FileNotFoundError:
        raise ReadError(
            manifest, f"{where}: no such file (paths are taken from the manifest's folder)"
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReadError(manifest, f"{where}: cannot access the file: {reason}") from None
    problem = None if stat.S_ISFIFO(mode) else not_regular(mode)
    if problem:
        raise ReadError(manifest, f"{where} {problem}")
