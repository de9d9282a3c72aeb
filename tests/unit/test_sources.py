"""lossctl.io.sources: FIFOs and pipes read like standard input, within the stream limit;
every path opened once and read through that descriptor; manifests' paths checked."""

from __future__ import annotations

import builtins
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io import sources
from lossctl.io.readers import read_array, read_document
from lossctl.io.shards import read_manifest
from lossctl.io.sources import read_stdin, read_stream, stream_limit

X = np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]])


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def feed(fifo: Path, data: bytes, delay: float = 0.0) -> threading.Thread:
    """A writer thread: opens the FIFO (after ``delay`` s), writes ``data``, closes it."""

    def write() -> None:
        threading.Event().wait(delay)
        with open(fifo, "wb") as handle:
            handle.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("pipe.json", json.dumps(X.tolist()).encode()),
        ("pipe", b"1.5,-2,0.25\n3,0.5,-1\n"),
        ("pipe.npy", npy_bytes(X)),
        ("pipe.bin", npy_bytes(np.asfortranarray(X))),
    ],
)
def test_fifo_is_read_like_standard_input(
    tmp_path: Path, alarm: None, name: str, data: bytes
) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    writer = feed(fifo, data)
    loaded = read_array(str(fifo))
    writer.join()
    np.testing.assert_array_equal(loaded.array, X)
    assert loaded.source == str(fifo)


def test_fifo_whose_writer_comes_late_is_waited_for(tmp_path: Path, alarm: None) -> None:
    fifo = make_fifo(tmp_path / "late.json")
    writer = feed(fifo, b"[1, 2, 3]", delay=0.5)  # lossctl opens first: it must not see EOF
    assert read_array(str(fifo)).array.tolist() == [1, 2, 3]
    writer.join()


def refusal(spec: str) -> str:
    """The message of the ReadError that reading ``spec`` raises."""
    with pytest.raises(ReadError) as info:
        read_array(spec)
    return str(info.value)


def test_fifo_without_writer_is_refused_after_the_wait(
    tmp_path: Path, alarm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = make_fifo(tmp_path / "nobody.json")
    monkeypatch.setenv("LOSSCTL_FIFO_WAIT", "0.2")
    assert refusal(str(fifo)) == (
        f"{fifo}: no process is writing to this FIFO (waited 0.2 s); start the writer first, "
        f"e.g. `python dump.py > {fifo} &`, or wait longer with LOSSCTL_FIFO_WAIT=60"
    )


def test_fifo_closed_without_data_is_empty(tmp_path: Path, alarm: None) -> None:
    writer = feed(make_fifo(tmp_path / "empty.json"), b"")
    message = refusal(str(tmp_path / "empty.json"))
    assert message.endswith("the FIFO is empty: its writer closed it without writing")
    writer.join()


def test_fifo_past_the_limit_is_refused(
    tmp_path: Path, alarm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = make_fifo(tmp_path / "big.json")
    monkeypatch.setenv("LOSSCTL_STREAM_LIMIT", "4K")
    done = threading.Event()

    def write() -> None:  # more than the limit; the reader stops and closes: EPIPE here
        try:
            with open(fifo, "wb") as handle:
                handle.write(b"[" + b"1," * 100_000 + b"1]")
        except BrokenPipeError:
            pass
        done.set()

    threading.Thread(target=write, daemon=True).start()
    message = refusal(str(fifo))
    assert message.startswith(f"{fifo}: more than 4 KiB on this FIFO, the limit")
    assert "save the data to a file" in message
    assert done.wait(10)


def test_manifest_and_document_from_a_fifo(
    tmp_path: Path, alarm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.npy").write_bytes(npy_bytes(X))
    (tmp_path / "b.json").write_text("[0, 1]")
    fifo = make_fifo(tmp_path / "manifest")
    monkeypatch.chdir(tmp_path)  # a FIFO's relative paths are taken from the current folder
    writer = feed(fifo, b"a.npy b.json\n")
    assert read_manifest(str(fifo)) == [("a.npy", "b.json")]
    writer.join()
    writer = feed(fifo, b'{"op": "ce"}')
    assert read_document(str(fifo)) == ({"op": "ce"}, str(fifo))
    writer.join()


def test_manifest_refuses_what_is_no_file_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(npy_bytes(X))
    (tmp_path / "folder").mkdir()
    cases = {
        "/dev/urandom": "line 3: /dev/urandom is a character device, not a regular file",
        "folder": f"line 3: {tmp_path / 'folder'} is a directory, not a file",
        "gone.npy": f"line 3: {tmp_path / 'gone.npy'}: no such file (paths are taken from",
    }
    for listed, expected in cases.items():
        manifest = tmp_path / "m.txt"
        manifest.write_text(f"# shards\na.npy a.npy\n{listed} a.npy\n")
        with pytest.raises(ReadError) as info:
            read_manifest(str(manifest))
        assert str(info.value).startswith(f"{manifest}: {expected}"), str(info.value)


def test_stdin_past_the_limit_stops_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most limit + 1 bytes are taken from the stream, whatever it holds."""
    monkeypatch.setenv("LOSSCTL_STREAM_LIMIT", "1M")
    stream = io.BytesIO(bytes(5 << 20))
    with pytest.raises(ReadError) as info:
        read_stdin(stream)
    assert str(info.value).startswith("<stdin>: more than 1 MiB on standard input, the limit")
    assert stream.tell() == (1 << 20) + 1
    assert len(read_stream(io.BytesIO(bytes(1 << 20)), "x", "x")) == 1 << 20  # exactly: fine


@pytest.mark.parametrize(
    ("text", "expected"),
    [("123", 123), ("4K", 4096), ("2g", 2 << 30), ("512MiB", 512 << 20), (" 1 T ", 1 << 40)],
)
def test_stream_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: int
) -> None:
    monkeypatch.setenv("LOSSCTL_STREAM_LIMIT", text)
    assert stream_limit() == expected


@pytest.mark.parametrize("text", ["abc", "0", "-1", "1.5G", "4X"])
def test_bad_stream_limit_is_one_line(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("LOSSCTL_STREAM_LIMIT", text)
    with pytest.raises(ReadError, match=r"^LOSSCTL_STREAM_LIMIT: .* is not a size"):
        read_array("-", stdin=io.BytesIO(b"[1]"))


@pytest.mark.parametrize("text", ["soon", "-1", "nan"])
def test_bad_fifo_wait_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    fifo = make_fifo(tmp_path / "f")
    monkeypatch.setenv("LOSSCTL_FIFO_WAIT", text)
    with pytest.raises(ReadError, match=r"^LOSSCTL_FIFO_WAIT: .* is not a number of seconds"):
        read_array(str(fifo))


def test_default_limit_is_a_quarter_of_memory_at_most_2_gib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOSSCTL_STREAM_LIMIT", raising=False)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert stream_limit() == min(2 << 30, physical // 4)


@pytest.mark.parametrize("name", ["x.npy", "x.npz", "x.pt", "x.safetensors"])
def test_a_file_is_opened_once_and_read_through_that_descriptor(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No check-then-open: the readers map the descriptor lossctl opened, never the name."""
    path = str(Path(__file__).resolve().parents[1] / "data" / "stream" / name)
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(file))
        return real_os_open(file, *args, **kwargs)

    def py_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    loaded = read_array(path + (":logits" if name != "x.npy" else ""))
    np.testing.assert_allclose(loaded.array, X.astype(np.float32))
    assert opened.count(path) == 1, opened


def test_a_file_replaced_after_opening_is_read_as_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alarm: None
) -> None:
    """Once open, swapping the name for a FIFO changes nothing (nothing is opened again)."""
    path = tmp_path / "x.npy"
    path.write_bytes(npy_bytes(X))
    real = sources.open_descriptor

    def then_swap(name: str) -> int:
        fd = real(name)
        os.unlink(name)
        os.mkfifo(name)  # opening this by name again would block
        return fd

    monkeypatch.setattr(sources, "open_descriptor", then_swap)
    np.testing.assert_array_equal(read_array(str(path)).array, X)
