"""Many inputs at once: globs, manifests, pairing, and the exact combined loss."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lossctl.errors import InputError, ReadError
from lossctl.io.shards import expand, natural_key, pair, read_manifest, split_arguments
from tests.helpers import run_shell


def make_shards(folder: Path, count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(count * 50, 30)).astype(np.float32)
    y = rng.integers(0, 30, count * 50)
    y[::7] = -100
    for i, (part_x, part_y) in enumerate(
        zip(np.array_split(x, count), np.array_split(y, count), strict=True)
    ):
        np.save(folder / f"logits-{i}.npy", part_x)
        np.save(folder / f"labels-{i}.npy", part_y)
    np.save(folder / "all.npy", x)
    np.save(folder / "all-labels.npy", y)
    return x, y


def run(folder: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    """A real shell, so unquoted globs are expanded by it as a user's would be."""
    return run_shell(command, cwd=folder)


def test_natural_order_and_expansion(tmp_path: Path) -> None:
    make_shards(tmp_path)
    assert sorted(["s-10", "s-2", "s-1"], key=natural_key) == ["s-1", "s-2", "s-10"]
    found = expand([str(tmp_path / "logits-*.npy")])
    assert [Path(p).name for p in found][:3] == ["logits-0.npy", "logits-1.npy", "logits-2.npy"]
    assert Path(found[-1]).name == "logits-11.npy"
    with pytest.raises(ReadError, match="no file matches"):
        expand([str(tmp_path / "nothing-*.npy")])


def test_pairing_follows_names_not_the_shells_order() -> None:
    inputs = ["logits-1.npy", "logits-2.npy", "logits-10.npy"]  # natural order (lossctl's glob)
    labels = ["labels-1.npy", "labels-10.npy", "labels-2.npy"]  # the shell's order
    assert pair(inputs, labels) == [
        ("logits-1.npy", "labels-1.npy"),
        ("logits-2.npy", "labels-2.npy"),
        ("logits-10.npy", "labels-10.npy"),
    ]
    # names that do not correspond: in the order given
    assert pair(["a.npy", "b.npy"], ["x.npy", "z.npy"]) == [("a.npy", "x.npy"), ("b.npy", "z.npy")]
    with pytest.raises(InputError, match="2 input files but 1 label files"):
        pair(["a", "b"], ["x"])
    with pytest.raises(InputError, match="3 files given"):
        split_arguments(["a.npy", "b.npy", "c.npy"])


def test_manifest(tmp_path: Path) -> None:
    for name in ("logits-0.npy", "labels-0.npy", "logits-1.npy", "labels-1.npy"):
        (tmp_path / name).touch()  # listed files must exist (checked with their line)
    (tmp_path / "m.txt").write_text(
        "# shards\nlogits-0.npy labels-0.npy\n\nlogits-1.npy,labels-1.npy\n"
    )
    assert read_manifest(str(tmp_path / "m.txt")) == [
        (str(tmp_path / "logits-0.npy"), str(tmp_path / "labels-0.npy")),
        (str(tmp_path / "logits-1.npy"), str(tmp_path / "labels-1.npy")),
    ]
    (tmp_path / "bad.txt").write_text("only-one.npy\n")
    with pytest.raises(ReadError, match="line 1: expected two paths"):
        read_manifest(str(tmp_path / "bad.txt"))


@pytest.mark.parametrize(
    "arguments",
    [
        "'logits-*.npy' labels-*.npy",  # the form: the shell expands the second
        "'logits-*.npy' 'labels-*.npy'",
        "logits-*.npy labels-*.npy",  # both expanded by the shell, in its order
        "--manifest manifest.txt",
    ],
)
def test_shards_give_exactly_the_loss_of_the_whole(tmp_path: Path, arguments: str) -> None:
    make_shards(tmp_path)
    lines = [f"logits-{i}.npy labels-{i}.npy" for i in range(12)]
    (tmp_path / "manifest.txt").write_text("\n".join(lines) + "\n")
    sharded = run(tmp_path, f"lossctl ce {arguments} --json")
    whole = run(tmp_path, "lossctl ce all.npy all-labels.npy --json")
    assert sharded.returncode == 0, sharded.stderr.decode()
    doc, expected = json.loads(sharded.stdout), json.loads(whole.stdout)
    assert doc["shards"] == 12
    assert doc["loss"] == expected["loss"]  # bit-identical, not approximately
    assert doc["exact"] == expected["exact"]
    assert (doc["count"], doc["ignored"]) == (expected["count"], expected["ignored"])


def test_shards_with_reduction_none_and_sum(tmp_path: Path) -> None:
    make_shards(tmp_path)
    none = json.loads(
        run(tmp_path, "lossctl ce 'logits-*.npy' 'labels-*.npy' -r none --json").stdout
    )
    whole = json.loads(run(tmp_path, "lossctl ce all.npy all-labels.npy -r none --json").stdout)
    assert none["loss"] == whole["loss"]
    total = json.loads(
        run(tmp_path, "lossctl ce 'logits-*.npy' 'labels-*.npy' -r sum --json").stdout
    )
    assert (
        total["loss"]
        == json.loads(run(tmp_path, "lossctl ce all.npy all-labels.npy -r sum --json").stdout)[
            "loss"
        ]
    )


def test_per_input_options_are_refused_over_shards(tmp_path: Path) -> None:
    make_shards(tmp_path, count=2)
    proc = run(tmp_path, "lossctl ce 'logits-*.npy' 'labels-*.npy' --grad")
    assert proc.returncode == 1
    assert proc.stderr.decode().count("\n") == 1
    assert "work on one input at a time" in proc.stderr.decode()


def test_a_bad_shard_is_named(tmp_path: Path) -> None:
    make_shards(tmp_path, count=3)
    np.save(tmp_path / "labels-1.npy", np.array([99] * 50))
    proc = run(tmp_path, "lossctl ce 'logits-*.npy' 'labels-*.npy'")
    assert proc.returncode == 1
    assert "labels-1.npy: target 99 at position (0,) is out of range" in proc.stderr.decode()
    assert proc.stdout == b""
