"""Finding the GGUF file a model name points at, and reading its metadata.

vLLM passes the user's `model` string (a path to a `.gguf` file, or a folder holding
exactly one) to the config parser, the tokenizer and the model loader alike; each of
them resolves it here, so they agree on the file.
"""

from pathlib import Path

GGUF_SUFFIX = ".gguf"


def gguf_path(model: str | Path) -> Path:
    """The `.gguf` file `model` names: the file itself, or the only one in a folder."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != GGUF_SUFFIX:
            raise ValueError(f"forge_gguf: {str(path)!r} is not a {GGUF_SUFFIX} file")
        return path
    if path.is_dir():
        found = sorted(path.glob(f"*{GGUF_SUFFIX}"))
        if len(found) == 1:
            return found[0]
        raise ValueError(
            f"forge_gguf: the folder {str(path)!r} holds {len(found)} "
            f"{GGUF_SUFFIX} files ({[p.name for p in found]}); name one file"
        )
    raise ValueError(
        f"forge_gguf: {str(path)!r} is neither a {GGUF_SUFFIX} file nor a "
        f"folder with one (GGUF models are read from local files only)"
    )


def is_gguf_model(model: str | Path) -> bool:
    try:
        gguf_path(model)
    except ValueError:
        return False
    return True


def open_reader(path: Path):
    """A read-only memory map of the file (tensor data is read lazily, page by page)."""
    from gguf import GGUFReader

    return GGUFReader(path, "r")


def field(reader, key: str, default=None):
    """The value of one metadata key (scalars and strings as Python values)."""
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def architecture(reader) -> str:
    return field(reader, "general.architecture")
