"""Which caption bank the decoder decodes with, and whether it fits the model the perception node runs.

The decoder is given the same `model_manifest` as the perception node. Its bank is `bank_path` when set, else
that model's `captions` bank (the bundled model's when `model_manifest` is empty too). A bank whose dimension
differs from the model's embedding_dim could never match an embedding: the decoder refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vljepa_ros.perception.config import ConfigError
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import ManifestError, load_manifest

# Characters of a path echoed in an error (a 10 kB parameter value is not repeated in full).
_PATH_CHARS = 200


def _clip(text: str) -> str:
    return text if len(text) <= _PATH_CHARS else f"{text[:_PATH_CHARS]}... ({len(text)} chars)"


@dataclass(frozen=True)
class BankChoice:
    """The bank to load, the model it must fit, and that model's embedding dimension."""

    path: Path
    manifest: Path
    embedding_dim: int


def choose_bank(bank_path: str, model_manifest: str) -> BankChoice:
    """The bank for the decoder's `bank_path` and `model_manifest` parameter values ('' = the model's / bundled).

    ConfigError names the parameter: a manifest that cannot be read, or no bank named and none in the model.
    """
    manifest_path = Path(model_manifest) if model_manifest else bundled_manifest_path()
    if not manifest_path.is_file():
        raise ConfigError("model_manifest", f"no manifest at {_clip(str(manifest_path))}")
    try:
        manifest = load_manifest(manifest_path, check_files=False)
    except (ManifestError, OSError, ValueError) as err:
        raise ConfigError("model_manifest", f"cannot read {_clip(str(manifest_path))}: {err}") from None
    if bank_path:
        return BankChoice(Path(bank_path), manifest_path, manifest.embedding_dim)
    if "captions" not in manifest.banks:
        raise ConfigError("bank_path", f"empty and the model {_clip(str(manifest_path))} names no captions bank")
    return BankChoice(Path(manifest.banks["captions"]), manifest_path, manifest.embedding_dim)


def check_bank_fits(choice: BankChoice, bank_dim: int) -> None:
    """ConfigError('bank_path') when a bank of dimension `bank_dim` cannot decode the chosen model's embeddings."""
    if bank_dim != choice.embedding_dim:
        raise ConfigError(
            "bank_path",
            f"{_clip(str(choice.path))} holds {bank_dim}-d embeddings but the model {_clip(str(choice.manifest))} "
            f"embeds in {choice.embedding_dim}-d; give a bank made with that model (make_bank --manifest)",
        )
