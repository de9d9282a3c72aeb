"""Shard groups for ``kl``: REF… OTHER… [LABELS…] paired by name, ambiguity refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossctl.errors import InputError
from lossctl.io.shards import split_groups


def touch(folder: Path, *names: str) -> list[str]:
    for name in names:
        (folder / name).write_text("[]")
    return [str(folder / name) for name in names]


def test_one_file_per_group_is_one_shard(tmp_path: Path) -> None:
    r, o, lab = touch(tmp_path, "r.npy", "o.npy", "l.npy")
    assert split_groups([r, o], (2, 3)) == [(r, o)]
    assert split_groups([r, o, lab], (2, 3)) == [(r, o, lab)]


def test_patterns_expand_per_group_and_pair_by_name(tmp_path: Path) -> None:
    touch(tmp_path, *(f"{g}-{i}.npy" for g in ("ref", "oth", "lab") for i in (1, 2, 10)))
    groups = split_groups([str(tmp_path / f"{g}-*.npy") for g in ("ref", "oth", "lab")], (2, 3))
    assert [Path(p).name for p in groups[2]] == ["ref-10.npy", "oth-10.npy", "lab-10.npy"]


def test_flat_lists_split_into_the_groups_whose_names_pair(tmp_path: Path) -> None:
    two = touch(
        tmp_path, "ref-0.npy", "ref-1.npy", "ref-2.npy", "oth-2.npy", "oth-0.npy", "oth-1.npy"
    )
    assert [tuple(Path(p).name for p in g) for g in split_groups(two, (2, 3))] == [
        ("ref-0.npy", "oth-0.npy"),
        ("ref-1.npy", "oth-1.npy"),
        ("ref-2.npy", "oth-2.npy"),
    ]
    three = touch(tmp_path, "a-0.npy", "a-1.npy", "b-1.npy", "b-0.npy", "c-0.npy", "c-1.npy")
    assert len(split_groups(three, (2, 3))) == 2
    assert split_groups(three, (2, 3))[0][1].endswith("b-0.npy")


def test_ambiguous_or_uneven_lists_are_refused(tmp_path: Path) -> None:
    names = touch(tmp_path, "u.npy", "v.npy", "w.npy", "x.npy", "y.npy", "z.npy")
    with pytest.raises(InputError, match="could be 2 groups of 3 or 3 groups of 2"):
        split_groups(names, (2, 3))
    with pytest.raises(InputError, match="5 files given"):
        split_groups(names[:5], (2, 3))
