"""Model manifest: frozen dataclasses, YAML load/save, and validation against the ONNX files it names.

The manifest is the single contract between the export side and the runtime. It is validated once, at load
time (structure, values, files, sha256) and once more when sessions exist (input/output names, dtypes,
shapes as onnxruntime reads them from the graph). Every failure raises `ManifestError` with a one-line message
naming the offending field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The newest manifest format this runtime reads; a manifest is written with the oldest version that holds it, so
# models that need nothing newer stay readable by older runtimes. 2 added the subword query tokenizer, the query
# embedding table outside the predictor graph and the text encoder's pad token.
FORMAT_VERSION = 3
SUPPORTED_FORMAT_VERSIONS = (1, 2, 3)
RESIZE_METHODS = ("bilinear",)
QUERY_TOKENIZER_KINDS = ("word", "subword")
PRECISIONS = ("fp32", "fp16", "int8")
# Steps a graph variant is made of (export/variants.py), joined by "-" in its kind, e.g. "optimised-int8".
VARIANT_STEPS = ("optimised", "fp16", "int8")

# Manifest dtype names -> onnxruntime `NodeArg.type` strings.
ORT_TYPE_OF_DTYPE = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "uint8": "tensor(uint8)",
}


class ManifestError(ValueError):
    """The manifest is malformed or does not match the files it describes."""


Dim = int | str  # int: fixed size; str: symbolic (dynamic) dimension such as "batch"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, element dtype and shape (symbolic dims are strings)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ClipSpec:
    """How a clip is sampled and preprocessed before the encoder (V-JEPA 2 conventions)."""

    frames: int
    frame_rate_hz: float
    tubelet: int
    patch: int
    crop_size: int
    resize_short: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # The resize the model was trained with (format 3 `clip.resize`); without it: bilinear, no antialiasing,
    # as OpenCV's INTER_LINEAR (the bundled model was trained so).
    resize_method: str = "bilinear"
    resize_antialias: bool = False

    @property
    def num_tokens(self) -> int:
        """Encoder tokens per clip: (T/tubelet) * (S/patch)^2."""
        return (self.frames // self.tubelet) * (self.crop_size // self.patch) ** 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "frame_rate_hz": self.frame_rate_hz,
            "tubelet": self.tubelet,
            "patch": self.patch,
            "crop_size": self.crop_size,
            "resize_short": self.resize_short,
            "mean": list(self.mean),
            "std": list(self.std),
            **({"resize": {"method": self.resize_method, "antialias": True}} if self.resize_antialias else {}),
        }


@dataclass(frozen=True)
class OnnxFileSpec:
    """An ONNX graph shipped with the model: resolved path, expected sha256 and I/O signature."""

    file: Path
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fused_preprocessing: bool = False
    # Encoder input is the uint8 centre crop (batch, T, S, S, 3); mean/std are folded into the patch embedding.
    normalise_in_graph: bool = False
    # The graph L2-normalises its first output itself and adds a scalar `<output>_valid` after it
    # (export/output_normalisation.py); the runtime only reads that flag.
    output_l2_normalized: bool = False

    def to_dict(self, root: Path, with_fused_flag: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"file": _relative(self.file, root), "sha256": self.sha256}
        if with_fused_flag:
            out["fused_preprocessing"] = self.fused_preprocessing
        if self.normalise_in_graph:
            out["normalise_in_graph"] = True
        if self.output_l2_normalized:
            out["output_l2_normalized"] = True
        out["inputs"] = [t.to_dict() for t in self.inputs]
        out["outputs"] = [t.to_dict() for t in self.outputs]
        return out


@dataclass(frozen=True)
class QueryTokenizerSpec:
    """Tokenizer of the predictor's text query: word-level (`vocab_file`; `lowercase` and `unk_id` apply to it only)
    or subword (`tokenizer_file`, a `tokenizers` tokenizer.json). Queries are right-padded with `pad_id`."""

    vocab_file: Path | None
    max_tokens: int
    lowercase: bool = True
    pad_id: int = 0
    unk_id: int = 1
    kind: str = "word"
    tokenizer_file: Path | None = None

    @property
    def file(self) -> Path:
        """The file the tokenizer is read from."""
        return self.tokenizer_file if self.kind == "subword" else self.vocab_file


@dataclass(frozen=True)
class QueryEmbeddingsSpec:
    """The predictor's token-embedding table kept outside its graph: a (rows, width) float32 `.npy` file the
    runtime memory-maps and gathers query rows from; the predictor graph then takes query embeddings."""

    file: Path
    sha256: str
    rows: int
    width: int


@dataclass(frozen=True)
class TextEncoderSpec:
    """Optional Y-encoder in ONNX, used to embed new vocabularies at run time."""

    file: Path
    tokenizer: Path
    sha256: str
    max_tokens: int = 128
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    # Pad token of the tokenizer; None: the tokenizer.json's own padding, else [PAD] or <pad>.
    pad_token: str | None = None


@dataclass(frozen=True)
class VariantSpec:
    """The graphs are a variant made offline from another export's fp32 graphs (export/variants.py): `kind` (its
    steps joined by "-"), that export's `source_version`, what each step did per graph (`steps`, e.g. fused op
    counts) and the `parity` measured against the source on held-out clips."""

    kind: str
    source_version: str
    steps: Mapping[str, Any] = field(default_factory=dict)
    parity: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source_version": self.source_version,
            "steps": _plain(self.steps),
            "parity": {k: _plain(v) for k, v in self.parity.items()},
        }


def _plain(value: Any) -> Any:
    """Mappings and numbers as YAML's plain types (numpy scalars and nested mappings included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool | int | str):
        return value
    return float(value)


@dataclass(frozen=True)
class Manifest:
    """A loaded, structurally validated model manifest. Paths are absolute (resolved against `root`)."""

    root: Path
    model_id: str
    version: str
    embedding_dim: int
    clip: ClipSpec
    encoder: OnnxFileSpec
    predictor: OnnxFileSpec
    query_tokenizer: QueryTokenizerSpec
    queries: Mapping[str, str]
    banks: Mapping[str, Path] = field(default_factory=dict)
    text_encoder: TextEncoderSpec | None = None
    opset: int | None = None
    precision: str = "fp32"
    query_embeddings: QueryEmbeddingsSpec | None = None
    variant: VariantSpec | None = None

    @property
    def format_version(self) -> int:
        """The oldest format that holds this manifest (1 unless it uses a format-2 field)."""
        uses_2 = (
            self.query_tokenizer.kind != "word"
            or self.query_embeddings is not None
            or (self.text_encoder is not None and self.text_encoder.pad_token is not None)
        )
        if self.clip.resize_antialias:
            return 3  # an older runtime would read the file and resize the frames differently
        return 2 if uses_2 else 1

    def to_dict(self) -> dict[str, Any]:
        """The YAML-ready mapping (paths relative to the manifest's folder)."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "model_id": self.model_id,
            "version": self.version,
            "embedding_dim": self.embedding_dim,
            "precision": self.precision,
        }
        if self.opset is not None:
            out["opset"] = self.opset
        out["clip"] = self.clip.to_dict()
        out["encoder"] = self.encoder.to_dict(self.root, with_fused_flag=True)
        out["predictor"] = self.predictor.to_dict(self.root)
        qt = self.query_tokenizer
        if qt.kind == "word":
            out["query_tokenizer"] = {
                "vocab_file": _relative(qt.vocab_file, self.root),
                "max_tokens": qt.max_tokens,
                "lowercase": qt.lowercase,
                "pad_id": qt.pad_id,
                "unk_id": qt.unk_id,
            }
        else:
            out["query_tokenizer"] = {
                "kind": qt.kind,
                "tokenizer_file": _relative(qt.tokenizer_file, self.root),
                "max_tokens": qt.max_tokens,
                "pad_id": qt.pad_id,
            }
        if self.query_embeddings is not None:
            qe = self.query_embeddings
            out["query_embeddings"] = {
                "file": _relative(qe.file, self.root),
                "sha256": qe.sha256,
                "rows": qe.rows,
                "width": qe.width,
            }
        out["queries"] = dict(self.queries)
        if self.text_encoder is not None:
            te = self.text_encoder
            out["text_encoder"] = {
                "file": _relative(te.file, self.root),
                "tokenizer": _relative(te.tokenizer, self.root),
                "sha256": te.sha256,
                "max_tokens": te.max_tokens,
                "inputs": [t.to_dict() for t in te.inputs],
                "outputs": [t.to_dict() for t in te.outputs],
            }
            if te.pad_token is not None:
                out["text_encoder"]["pad_token"] = te.pad_token
        if self.banks:
            out["banks"] = {k: _relative(v, self.root) for k, v in self.banks.items()}
        if self.variant is not None:
            out["variant"] = self.variant.to_dict()
        return out


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def sha256_of_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks so multi-GB graphs do not need to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def external_data_path(graph: Path) -> Path:
    """Where a graph's weights live when they are stored outside the .onnx file (graphs over 2 GB)."""
    return Path(f"{graph}.data")


def sha256_of_graph(graph: Path) -> str:
    """sha256 over the .onnx file followed by its external weight file, if it has one."""
    digest = hashlib.sha256()
    for path in (Path(graph), external_data_path(graph)):
        if path == Path(graph) or path.is_file():
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
    return digest.hexdigest()


def model_version(sha256s: Sequence[str]) -> str:
    """Model version: first 16 hex digits of the sha256 over the files' sha256s (order as given)."""
    return hashlib.sha256("".join(sha256s).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- parsing
class _Reader:
    """Typed field access into the raw YAML mapping; every error names the dotted field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> ManifestError:
        return ManifestError(f"{self.source}: {path}: {message}")

    def mapping(self, raw: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(raw).__name__}")
        return raw

    def get(self, raw: Mapping[str, Any], key: str, path: str, default: Any = ...) -> Any:
        if key not in raw:
            if default is ...:
                raise self.fail(_join(path, key), "missing")
            return default
        return raw[key]

    def positive_int(self, raw: Mapping[str, Any], key: str, path: str, default: Any = ...) -> int:
        value = self.get(raw, key, path, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(_join(path, key), f"must be a positive integer, got {value!r}")
        return value

    def non_negative_int(self, raw: Mapping[str, Any], key: str, path: str, default: Any = ...) -> int:
        value = self.get(raw, key, path, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(_join(path, key), f"must be a non-negative integer, got {value!r}")
        return value

    def positive_float(self, raw: Mapping[str, Any], key: str, path: str) -> float:
        value = self.get(raw, key, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self.fail(_join(path, key), f"must be a positive number, got {value!r}")
        return float(value)

    def string(self, raw: Mapping[str, Any], key: str, path: str, default: Any = ...) -> str:
        value = self.get(raw, key, path, default)
        if not isinstance(value, str) or not value:
            raise self.fail(_join(path, key), f"must be a non-empty string, got {value!r}")
        return value

    def boolean(self, raw: Mapping[str, Any], key: str, path: str, default: Any = ...) -> bool:
        value = self.get(raw, key, path, default)
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), f"must be true or false, got {value!r}")
        return value

    def triple(self, raw: Mapping[str, Any], key: str, path: str, positive: bool) -> tuple[float, float, float]:
        value = self.get(raw, key, path)
        ok = isinstance(value, (list, tuple)) and len(value) == 3
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if ok and positive:
            ok = all(v > 0 for v in value)
        if not ok:
            kind = "positive numbers" if positive else "numbers"
            raise self.fail(_join(path, key), f"must be a list of 3 {kind}, got {value!r}")
        return (float(value[0]), float(value[1]), float(value[2]))

    def tensors(self, raw: Mapping[str, Any], key: str, path: str) -> tuple[TensorSpec, ...]:
        value = self.get(raw, key, path)
        where = _join(path, key)
        if not isinstance(value, list) or not value:
            raise self.fail(where, "must be a non-empty list of {name, dtype, shape}")
        specs = []
        for i, item in enumerate(value):
            item_path = f"{where}[{i}]"
            item = self.mapping(item, item_path)
            name = self.string(item, "name", item_path)
            dtype = self.string(item, "dtype", item_path)
            if dtype not in ORT_TYPE_OF_DTYPE:
                raise self.fail(
                    f"{item_path}.dtype", f"unsupported dtype {dtype!r} (one of {sorted(ORT_TYPE_OF_DTYPE)})"
                )
            shape = self.get(item, "shape", item_path)
            if not isinstance(shape, list) or not all(
                (isinstance(d, int) and not isinstance(d, bool) and d > 0) or (isinstance(d, str) and d) for d in shape
            ):
                raise self.fail(f"{item_path}.shape", f"must be a list of positive ints or dim names, got {shape!r}")
            specs.append(TensorSpec(name=name, dtype=dtype, shape=tuple(shape)))
        return tuple(specs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_clip(r: _Reader, raw: Mapping[str, Any]) -> ClipSpec:
    raw = r.mapping(raw, "clip")
    clip = ClipSpec(
        frames=r.positive_int(raw, "frames", "clip"),
        frame_rate_hz=r.positive_float(raw, "frame_rate_hz", "clip"),
        tubelet=r.positive_int(raw, "tubelet", "clip"),
        patch=r.positive_int(raw, "patch", "clip"),
        crop_size=r.positive_int(raw, "crop_size", "clip"),
        resize_short=r.positive_int(raw, "resize_short", "clip"),
        mean=r.triple(raw, "mean", "clip", positive=False),
        std=r.triple(raw, "std", "clip", positive=True),
        **_parse_resize(r, raw),
    )
    if clip.frames % clip.tubelet:
        raise r.fail("clip.frames", f"{clip.frames} is not a multiple of clip.tubelet={clip.tubelet}")
    if clip.crop_size % clip.patch:
        raise r.fail("clip.crop_size", f"{clip.crop_size} is not a multiple of clip.patch={clip.patch}")
    if clip.resize_short < clip.crop_size:
        raise r.fail("clip.resize_short", f"{clip.resize_short} is smaller than clip.crop_size={clip.crop_size}")
    return clip


def _parse_resize(r: _Reader, clip_raw: Mapping[str, Any]) -> dict[str, Any]:
    """`clip.resize` (format 3): {method: bilinear, antialias: bool}; absent: bilinear without antialiasing."""
    raw = r.get(clip_raw, "resize", "clip", default=None)
    if raw is None:
        return {}
    raw = r.mapping(raw, "clip.resize")
    method = r.string(raw, "method", "clip.resize")
    if method not in RESIZE_METHODS:
        raise r.fail("clip.resize.method", f"must be one of {list(RESIZE_METHODS)}, got {method!r}")
    return {"resize_method": method, "resize_antialias": r.boolean(raw, "antialias", "clip.resize")}


def _parse_onnx_file(r: _Reader, raw: Any, key: str, root: Path) -> OnnxFileSpec:
    raw = r.mapping(raw, key)
    return OnnxFileSpec(
        file=root / r.string(raw, "file", key),
        sha256=r.string(raw, "sha256", key),
        inputs=r.tensors(raw, "inputs", key),
        outputs=r.tensors(raw, "outputs", key),
        fused_preprocessing=r.boolean(raw, "fused_preprocessing", key, default=False),
        normalise_in_graph=r.boolean(raw, "normalise_in_graph", key, default=False),
        output_l2_normalized=r.boolean(raw, "output_l2_normalized", key, default=False),
    )


def _parse_query_tokenizer(r: _Reader, raw: Mapping[str, Any], root: Path) -> QueryTokenizerSpec:
    kind = r.string(raw, "kind", "query_tokenizer", default="word")
    if kind not in QUERY_TOKENIZER_KINDS:
        raise r.fail("query_tokenizer.kind", f"must be one of {list(QUERY_TOKENIZER_KINDS)}, got {kind!r}")
    max_tokens = r.positive_int(raw, "max_tokens", "query_tokenizer")
    if kind == "subword":
        return QueryTokenizerSpec(
            vocab_file=None,
            max_tokens=max_tokens,
            lowercase=False,
            pad_id=r.non_negative_int(raw, "pad_id", "query_tokenizer"),
            kind=kind,
            tokenizer_file=root / r.string(raw, "tokenizer_file", "query_tokenizer"),
        )
    return QueryTokenizerSpec(
        vocab_file=root / r.string(raw, "vocab_file", "query_tokenizer"),
        max_tokens=max_tokens,
        lowercase=r.boolean(raw, "lowercase", "query_tokenizer", default=True),
        pad_id=r.non_negative_int(raw, "pad_id", "query_tokenizer", default=0),
        unk_id=r.non_negative_int(raw, "unk_id", "query_tokenizer", default=1),
    )


def parse_manifest(raw: Any, root: Path, source: str = "manifest") -> Manifest:
    """Build a `Manifest` from the raw YAML mapping; checks structure and values, not files."""
    r = _Reader(source)
    raw = r.mapping(raw, "(top level)")
    version = r.positive_int(raw, "format_version", "")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise r.fail(
            "format_version", f"unsupported version {version} (this runtime reads {SUPPORTED_FORMAT_VERSIONS})"
        )
    qt_raw = r.mapping(r.get(raw, "query_tokenizer", ""), "query_tokenizer")
    queries_raw = r.mapping(r.get(raw, "queries", ""), "queries")
    queries = {}
    for name, text in queries_raw.items():
        if not isinstance(text, str) or not text.strip():
            raise r.fail(f"queries.{name}", f"must be a non-empty string, got {text!r}")
        queries[str(name)] = text
    banks_raw = r.mapping(r.get(raw, "banks", "", default={}) or {}, "banks")
    banks = {}
    for name, rel in banks_raw.items():
        if not isinstance(rel, str) or not rel:
            raise r.fail(f"banks.{name}", f"must be a file name, got {rel!r}")
        banks[str(name)] = root / rel
    text_encoder = None
    te_raw = r.get(raw, "text_encoder", "", default=None)
    if te_raw is not None:
        te_raw = r.mapping(te_raw, "text_encoder")
        text_encoder = TextEncoderSpec(
            file=root / r.string(te_raw, "file", "text_encoder"),
            tokenizer=root / r.string(te_raw, "tokenizer", "text_encoder"),
            sha256=r.string(te_raw, "sha256", "text_encoder"),
            max_tokens=r.positive_int(te_raw, "max_tokens", "text_encoder", default=128),
            inputs=r.tensors(te_raw, "inputs", "text_encoder") if "inputs" in te_raw else (),
            outputs=r.tensors(te_raw, "outputs", "text_encoder") if "outputs" in te_raw else (),
            pad_token=r.string(te_raw, "pad_token", "text_encoder") if "pad_token" in te_raw else None,
        )
    query_embeddings = None
    qe_raw = r.get(raw, "query_embeddings", "", default=None)
    if qe_raw is not None:
        qe_raw = r.mapping(qe_raw, "query_embeddings")
        query_embeddings = QueryEmbeddingsSpec(
            file=root / r.string(qe_raw, "file", "query_embeddings"),
            sha256=r.string(qe_raw, "sha256", "query_embeddings"),
            rows=r.positive_int(qe_raw, "rows", "query_embeddings"),
            width=r.positive_int(qe_raw, "width", "query_embeddings"),
        )
    opset = raw.get("opset")
    if opset is not None:
        opset = r.positive_int(raw, "opset", "")
    precision = r.string(raw, "precision", "", default="fp32")
    if precision not in PRECISIONS:
        raise r.fail("precision", f"must be one of {list(PRECISIONS)}, got {precision!r}")
    manifest = Manifest(
        root=root,
        model_id=r.string(raw, "model_id", ""),
        version=str(r.get(raw, "version", "")),
        embedding_dim=r.positive_int(raw, "embedding_dim", ""),
        clip=_parse_clip(r, r.get(raw, "clip", "")),
        encoder=_parse_onnx_file(r, r.get(raw, "encoder", ""), "encoder", root),
        predictor=_parse_onnx_file(r, r.get(raw, "predictor", ""), "predictor", root),
        query_tokenizer=_parse_query_tokenizer(r, qt_raw, root),
        queries=queries,
        banks=banks,
        text_encoder=text_encoder,
        opset=opset,
        precision=precision,
        query_embeddings=query_embeddings,
        variant=_parse_variant(r, r.get(raw, "variant", "", default=None)),
    )
    _check_consistency(r, manifest)
    return manifest


def _parse_variant(r: _Reader, raw: Any) -> VariantSpec | None:
    if raw is None:
        return None
    raw = r.mapping(raw, "variant")
    kind = r.string(raw, "kind", "variant")
    steps = kind.split("-")
    if any(s not in VARIANT_STEPS for s in steps) or len(set(steps)) != len(steps):
        raise r.fail("variant.kind", f"expected steps from {list(VARIANT_STEPS)} joined by '-', got {kind!r}")
    parity = r.mapping(r.get(raw, "parity", "variant", default={}) or {}, "variant.parity")
    for key, value in parity.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise r.fail(f"variant.parity.{key}", f"must be a number, got {value!r}")
    return VariantSpec(
        kind=kind,
        source_version=str(r.get(raw, "source_version", "variant")),
        steps=dict(r.mapping(r.get(raw, "steps", "variant", default={}) or {}, "variant.steps")),
        parity=dict(parity),
    )


def _check_consistency(r: _Reader, m: Manifest) -> None:
    """Cross-field checks: the I/O signature must agree with the clip and the embedding size."""
    out = m.predictor.outputs[0]
    if isinstance(out.shape[-1], int) and out.shape[-1] != m.embedding_dim:
        raise r.fail("predictor.outputs[0].shape", f"last dim {out.shape[-1]} != embedding_dim {m.embedding_dim}")
    clip_in = m.encoder.inputs[0]
    if m.encoder.normalise_in_graph:
        if m.encoder.fused_preprocessing:
            raise r.fail("encoder.normalise_in_graph", "cannot be combined with fused_preprocessing (which implies it)")
        expected = (m.clip.frames, m.clip.crop_size, m.clip.crop_size, 3)
        if clip_in.dtype != "uint8" or tuple(clip_in.shape[1:]) != expected:
            raise r.fail(
                "encoder.inputs[0]",
                f"normalise_in_graph expects uint8 crops (batch, T, S, S, 3)={expected}, "
                f"got {clip_in.dtype} {list(clip_in.shape)}",
            )
    elif not m.encoder.fused_preprocessing:
        expected = (3, m.clip.frames, m.clip.crop_size, m.clip.crop_size)
        if tuple(clip_in.shape[1:]) != expected:
            raise r.fail(
                "encoder.inputs[0].shape", f"{list(clip_in.shape)} does not match clip (batch, 3, T, S, S)={expected}"
            )
    elif clip_in.dtype != "uint8" or len(clip_in.shape) != 5 or clip_in.shape[1] != m.clip.frames:
        raise r.fail("encoder.inputs[0]", "fused preprocessing expects uint8 frames shaped (batch, T, H, W, 3)")
    if m.predictor.output_l2_normalized:
        valid = m.predictor.outputs[1:2]
        if not valid or (valid[0].name, valid[0].dtype, valid[0].shape) != (f"{out.name}_valid", "float32", ()):
            raise r.fail(
                "predictor.outputs",
                f"output_l2_normalized needs a second output {out.name}_valid, "
                "float32, shape [] (the graph's validity flag)",
            )
    if len(m.predictor.inputs) != 3:
        raise r.fail("predictor.inputs", "expected 3 inputs (visual tokens, query ids, query mask)")
    ids = m.predictor.inputs[1]
    if len(ids.shape) < 2 or ids.shape[1] != m.query_tokenizer.max_tokens:
        raise r.fail("predictor.inputs[1].shape", f"query dim of {list(ids.shape)} != query_tokenizer.max_tokens")
    qe = m.query_embeddings
    if qe is not None and (ids.dtype, tuple(ids.shape[1:])) != ("float32", (m.query_tokenizer.max_tokens, qe.width)):
        raise r.fail(
            "predictor.inputs[1]",
            f"with query_embeddings the predictor takes float32 (batch, {m.query_tokenizer.max_tokens}, {qe.width}) "
            f"query embeddings, got {ids.dtype} {list(ids.shape)}",
        )
    if m.query_tokenizer.kind == "word" and m.query_tokenizer.pad_id == m.query_tokenizer.unk_id:
        raise r.fail("query_tokenizer.unk_id", "must differ from pad_id")


def load_manifest(path: str | Path, check_files: bool = True) -> Manifest:
    """Load and validate `manifest.yaml`. With `check_files`, every named file must exist and match its sha256."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    manifest = parse_manifest(raw, path.parent.resolve(), source=str(path))
    if check_files:
        check_manifest_files(manifest, source=str(path))
    return manifest


def check_manifest_files(manifest: Manifest, source: str = "manifest") -> None:
    """Every referenced file exists; the ONNX files match their recorded sha256."""
    hashed = [
        ("encoder", manifest.encoder.file, manifest.encoder.sha256),
        ("predictor", manifest.predictor.file, manifest.predictor.sha256),
    ]
    if manifest.text_encoder is not None:
        hashed.append(("text_encoder", manifest.text_encoder.file, manifest.text_encoder.sha256))
    if manifest.query_embeddings is not None:
        hashed.append(("query_embeddings", manifest.query_embeddings.file, manifest.query_embeddings.sha256))
    required = [(f"{key}.file", file) for key, file, _ in hashed]
    qt = manifest.query_tokenizer
    required.append((f"query_tokenizer.{'vocab_file' if qt.kind == 'word' else 'tokenizer_file'}", qt.file))
    if manifest.text_encoder is not None:
        required.append(("text_encoder.tokenizer", manifest.text_encoder.tokenizer))
    required += [(f"banks.{name}", file) for name, file in manifest.banks.items()]
    for key, file in required:
        if not Path(file).is_file():
            raise ManifestError(f"{source}: {key}: {file} does not exist")
    for key, file, expected in hashed:
        actual = sha256_of_graph(file)
        if actual != expected:
            raise ManifestError(
                f"{source}: {key}.sha256: {Path(file).name} has sha256 {actual[:16]}..., "
                f"manifest says {expected[:16]}..."
            )


def check_session_io(
    spec_inputs: Sequence[TensorSpec],
    spec_outputs: Sequence[TensorSpec],
    session_inputs: Sequence[Any],
    session_outputs: Sequence[Any],
    key: str,
) -> None:
    """Compare the manifest's I/O signature with an onnxruntime session's `get_inputs()/get_outputs()`.

    Fixed dims must be equal; a symbolic dim in the manifest must be symbolic in the graph (any name).
    """
    for kind, specs, args in (("inputs", spec_inputs, session_inputs), ("outputs", spec_outputs, session_outputs)):
        if len(specs) != len(args):
            names = [a.name for a in args]
            raise ManifestError(f"{key}.{kind}: manifest lists {len(specs)}, the graph has {len(args)} {names}")
        for i, (spec, arg) in enumerate(zip(specs, args)):
            where = f"{key}.{kind}[{i}]"
            if spec.name != arg.name:
                raise ManifestError(f"{where}.name: manifest says {spec.name!r}, the graph has {arg.name!r}")
            if ORT_TYPE_OF_DTYPE[spec.dtype] != arg.type:
                raise ManifestError(f"{where}.dtype: manifest says {spec.dtype}, the graph has {arg.type}")
            graph_shape = list(arg.shape)
            if len(graph_shape) != len(spec.shape) or not all(
                (isinstance(s, int) and s == g) or (isinstance(s, str) and not isinstance(g, int))
                for s, g in zip(spec.shape, graph_shape)
            ):
                raise ManifestError(f"{where}.shape: manifest says {list(spec.shape)}, the graph has {graph_shape}")


def write_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write the manifest as YAML (paths relative to its folder)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(manifest.to_dict(), sort_keys=False, default_flow_style=None))
    return path
