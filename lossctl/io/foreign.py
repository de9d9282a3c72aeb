"""Recognise formats lossctl does not read, to refuse them with a way to convert.

:func:`foreign_format` looks at the first bytes of a file (16 are enough) and its
extension, and returns a one-line refusal that names the format and says how to turn
it into something lossctl reads, or ``None`` when it does not recognise the file.

By content (magic bytes at the start, whatever the extension)
    Parquet ``PAR1``; Arrow IPC file / Feather v2 ``ARROW1``; Feather v1 ``FEA1``;
    HDF5 ``\\x89HDF\\r\\n\\x1a\\n``; GGUF ``GGUF``; the older llama.cpp GGML/GGMF/GGJT
    magics; a pickle of protocol 2 to 5 (``\\x80\\x02`` .. ``\\x80\\x05``), named as a
    legacy PyTorch file when the torch magic number follows it.

By extension only (when the content does not look like a format lossctl reads)
    ``.parquet``, ``.feather``/``.arrow``/``.arrows``/``.ipc``, ``.h5``/``.hdf5``,
    ``.gguf``, ``.pkl``/``.pickle``, ``.onnx`` (protobuf, which has no magic bytes).

Left to others
    ``.pt``, ``.pth`` and ``.bin`` always give ``None``: PyTorch files are handled by
    their own module.  Binary data in general (the NUL-byte message) is the readers'.
"""

from __future__ import annotations

__all__ = ["READABLE", "foreign_format"]

READABLE = "lossctl reads .npy, .npz, .json, .csv/.tsv, .pt (torch.save) and .safetensors"

_TORCH_EXTENSIONS = frozenset({".pt", ".pth", ".bin"})
# torch.serialization's legacy MAGIC_NUMBER 0x1950A86A20F9469CFC6C, pickled as a long.
_TORCH_LEGACY = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_HDF5 = b"\x89HDF\r\n\x1a\n"
_GGML = (b"lmgg", b"fmgg", b"tjgg")  # 'ggml', 'ggmf', 'ggjt' as little-endian u32

_PARQUET = (
    f"a Parquet file: {READABLE}; convert with "
    "`np.save('x.npy', pd.read_parquet('FILE').to_numpy())`"
)
_FEATHER = (
    f"{{what}}: {READABLE}; convert with `np.save('x.npy', pd.read_feather('FILE').to_numpy())`"
)
_ARROW_STREAM = (
    f"an Arrow IPC stream: {READABLE}; convert with `np.save('x.npy', "
    "pyarrow.ipc.open_stream('FILE').read_all().to_pandas().to_numpy())`"
)
_HDF5_MESSAGE = (
    f"an HDF5 file: {READABLE}; convert one dataset with "
    "`np.save('x.npy', h5py.File('FILE')['DATASET'][()])` (pandas HDF: `pd.read_hdf`)"
)
_GGUF = (
    "a GGUF model file (llama.cpp weights), not logits; run the model and save its logits, "
    "e.g. llama-cpp-python `Llama(FILE, logits_all=True)`, `llm.eval(tokens)`, then "
    "`np.save('logits.npy', llm.scores[:llm.n_tokens])`"
)
_GGML_MESSAGE = _GGUF.replace("a GGUF model file", "a GGML/GGJT model file (old llama.cpp)")
_PICKLE = (
    "a Python pickle: lossctl never unpickles (loading one can run arbitrary code); "
    "save the array from the program that made it with `np.save('x.npy', array)`"
)
_TORCH = (
    "a PyTorch file in the legacy torch.save format (a pickle): lossctl never unpickles; "
    "convert with `np.save('x.npy', torch.load('FILE', weights_only=True).numpy())`"
)
_ONNX = (
    "an ONNX model (by its extension), not logits; run it (e.g. with onnxruntime) "
    "and save the output logits with `np.save('logits.npy', outputs[0])`"
)

_BY_EXTENSION = {
    ".parquet": _PARQUET,
    ".feather": _FEATHER.format(what="a Feather file"),
    ".arrow": _FEATHER.format(what="an Arrow IPC file"),
    ".arrows": _ARROW_STREAM,
    ".ipc": _FEATHER.format(what="an Arrow IPC file"),
    ".h5": _HDF5_MESSAGE,
    ".hdf5": _HDF5_MESSAGE,
    ".gguf": _GGUF,
    ".pkl": _PICKLE,
    ".pickle": _PICKLE,
    ".onnx": _ONNX,
}


def foreign_format(head: bytes, ext: str) -> str | None:
    """A one-line refusal for a recognised foreign format, else ``None``.

    ``head``: the first bytes of the file (16 suffice); ``ext``: its extension, such as
    ``".parquet"`` (any case, the dot optional; ``""`` for standard input).
    """
    if not head:
        return None  # an empty file: the readers say so
    ext = ext.lower()
    if ext and not ext.startswith("."):
        ext = "." + ext
    if ext in _TORCH_EXTENSIONS:
        return None
    by_content = _by_content(head)
    if by_content is not None:
        return by_content
    if ext in _BY_EXTENSION and not _looks_readable(head):
        return _BY_EXTENSION[ext]
    return None


def _by_content(head: bytes) -> str | None:
    if head.startswith(b"PAR1"):
        return _PARQUET
    if head.startswith(b"ARROW1"):
        return _FEATHER.format(what="an Arrow IPC file (Feather v2)")
    if head.startswith(b"FEA1"):
        return _FEATHER.format(what="a Feather v1 file")
    if head.startswith(_HDF5):
        return _HDF5_MESSAGE
    if head.startswith(b"GGUF"):
        return _GGUF
    if head[:4] in _GGML:
        return _GGML_MESSAGE
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _TORCH if head[2:].startswith(_TORCH_LEGACY) else _PICKLE
    return None


def _looks_readable(head: bytes) -> bool:
    """Content that lossctl's readers take whatever the extension: NPY, zip, or text."""
    if head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")):
        return True
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return bool(text) and all(byte >= 32 or byte in (9, 10, 13) for byte in text)
