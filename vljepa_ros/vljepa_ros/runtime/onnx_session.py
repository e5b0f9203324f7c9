"""onnxruntime session factory: provider preference with an explained fallback, warm-up, IO binding.

Works with both the `onnxruntime` (CPU) and `onnxruntime-gpu` wheels: a provider that the installed build
lacks is skipped with the reason "not available in this onnxruntime build"; one that is present but fails to
initialise (missing CUDA/TensorRT libraries, no device) is skipped with "failed to create". Exactly one INFO
line says which provider runs and why the preferred ones do not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

LOG = logging.getLogger(__name__)

PROVIDER_OF_NAME = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_NUMPY_OF_ORT_TYPE = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
}
# Providers whose outputs live on the device: IO binding avoids an extra copy per call there.
_DEVICE_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class SessionConfig:
    """How to create sessions. `providers` are short names in preference order ("tensorrt", "cuda", "cpu")."""

    providers: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
    trt_cache_dir: Path | None = None
    fp16: bool = False
    device_id: int = 0
    intra_op_threads: int = 0  # 0: onnxruntime decides
    # Off: onnxruntime's default lets pool threads busy-wait after each parallel section, which on a robot's
    # shared CPU takes a core from the caller and the other nodes and pays only on an idle machine
    # (measurements in docs/benchmarks.md).
    spin_wait: bool = False
    warmup_runs: int = 1
    io_binding: bool | None = None  # None: on for device providers, off for CPU

    def __post_init__(self):
        if not self.providers:
            raise ValueError("providers: at least one provider name is required")
        unknown = [p for p in self.providers if p not in PROVIDER_OF_NAME]
        if unknown:
            raise ValueError(f"providers: unknown name(s) {unknown}; use {sorted(PROVIDER_OF_NAME)}")
        if self.warmup_runs < 0:
            raise ValueError(f"warmup_runs: must be >= 0, got {self.warmup_runs}")
        if self.intra_op_threads < 0:
            raise ValueError(f"intra_op_threads: must be >= 0, got {self.intra_op_threads}")


def provider_options(name: str, config: SessionConfig) -> dict[str, str]:
    """onnxruntime provider options for one provider short name."""
    if name == "tensorrt":
        opts = {"device_id": str(config.device_id), "trt_fp16_enable": "True" if config.fp16 else "False"}
        if config.trt_cache_dir is not None:
            Path(config.trt_cache_dir).mkdir(parents=True, exist_ok=True)
            opts.update(
                trt_engine_cache_enable="True",
                trt_engine_cache_path=str(config.trt_cache_dir),
                trt_timing_cache_enable="True",
                trt_timing_cache_path=str(config.trt_cache_dir),
            )
        return opts
    if name == "cuda":
        return {"device_id": str(config.device_id)}
    return {}


@dataclass(frozen=True)
class ProviderChoice:
    """The provider that runs and, for each preferred one skipped, why."""

    provider: str
    skipped: Mapping[str, str] = field(default_factory=dict)

    def log_line(self, model_name: str) -> str:
        why = "; ".join(f"{name}: {reason}" for name, reason in self.skipped.items())
        return f"{model_name}: running on {self.provider}" + (f" ({why})" if why else "")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def create_session(
    model_path: str | Path, config: SessionConfig = SessionConfig(), log: logging.Logger = LOG
) -> tuple[ort.InferenceSession, ProviderChoice]:
    """Create a session on the first requested provider that works; log one line with the choice.

    Each preferred provider is tried with the remaining ones as onnxruntime's own per-node fallback (so a
    TensorRT session still runs nodes TensorRT rejects on CUDA). Raises RuntimeError if none works.
    """
    model_path = Path(model_path)
    available = set(ort.get_available_providers())
    options = ort.SessionOptions()
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spin_wait else "0")
    skipped: dict[str, str] = {}
    usable = []
    for name in config.providers:
        if PROVIDER_OF_NAME[name] in available:
            usable.append(name)
        else:
            skipped[name] = "not available in this onnxruntime build"
    for i, name in enumerate(usable):
        chain = [(PROVIDER_OF_NAME[n], provider_options(n, config)) for n in usable[i:]]
        try:
            session = ort.InferenceSession(str(model_path), sess_options=options, providers=chain)
        except Exception as err:  # onnxruntime raises bare RuntimeError/Fail subclasses per build
            skipped[name] = f"failed to create: {_first_line(err)}"
            continue
        running = session.get_providers()[0]
        if running != PROVIDER_OF_NAME[name]:
            # onnxruntime dropped it silently (e.g. CUDA libraries missing); its own warning has the details.
            skipped[name] = "failed to create (onnxruntime fell back, see its warnings)"
            continue
        choice = ProviderChoice(provider=running, skipped=dict(skipped))
        log.info(choice.log_line(model_path.name))
        return session, choice
    why = "; ".join(f"{n}: {r}" for n, r in skipped.items())
    raise RuntimeError(f"{model_path.name}: no requested provider could run ({why})")


class OnnxModel:
    """A session plus its warm-up and run path (IO binding on device providers)."""

    def __init__(
        self, session: ort.InferenceSession, choice: ProviderChoice, io_binding: bool | None = None, device_id: int = 0
    ):
        self.session = session
        self.device_id = device_id
        self.choice = choice
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())
        self.io_binding = choice.provider in _DEVICE_PROVIDERS if io_binding is None else io_binding

    @classmethod
    def load(cls, model_path: str | Path, config: SessionConfig = SessionConfig(), log: logging.Logger = LOG):
        """Create the session per `config` and warm it up."""
        session, choice = create_session(model_path, config, log)
        model = cls(session, choice, config.io_binding, config.device_id)
        model.warm_up(config.warmup_runs)
        return model

    @property
    def provider(self) -> str:
        return self.choice.provider

    def dummy_inputs(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero inputs of the graph's shapes (symbolic dims set to `batch`), for warm-up."""
        feeds = {}
        for arg in self.session.get_inputs():
            shape = [d if isinstance(d, int) else batch for d in arg.shape]
            feeds[arg.name] = np.zeros(shape, dtype=_NUMPY_OF_ORT_TYPE[arg.type])
        return feeds

    def warm_up(self, runs: int = 1) -> None:
        """Run on zero inputs so lazy initialisation (kernel selection, TensorRT engine build) happens now."""
        feeds = self.dummy_inputs()
        for _ in range(runs):
            self.run(feeds)

    @property
    def output_device(self) -> str:
        """Where IO binding leaves the outputs: "cuda" for the device providers, else "cpu"."""
        return "cuda" if self.provider in _DEVICE_PROVIDERS else "cpu"

    def run(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> list[np.ndarray]:
        """Run the graph; returns outputs as numpy arrays in graph order. A feed may be an `ort.OrtValue` (an
        earlier `run_on_device` output); it is then bound where it lives, with no copy through the host."""
        if not self.io_binding and not any(isinstance(v, ort.OrtValue) for v in feeds.values()):
            return self.session.run(None, dict(feeds))
        return self._run_bound(feeds).copy_outputs_to_cpu()

    def run_on_device(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> list[ort.OrtValue]:
        """Run the graph with IO binding and leave the outputs where the provider wrote them (GPU memory on CUDA /
        TensorRT, host memory on the CPU), as OrtValues another graph's `run` or `run_on_device` can take."""
        return self._run_bound(feeds).get_outputs()

    def _run_bound(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> ort.IOBinding:
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        device = self.output_device
        for name in self.output_names:
            binding.bind_output(name, device, self.device_id if device == "cuda" else 0)
        self.session.run_with_iobinding(binding)
        return binding


def parse_provider_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """'tensorrt,cuda,cpu' (or a list) -> ('tensorrt', 'cuda', 'cpu'), lower-cased, validated."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(n.strip().lower() for n in names if n.strip())
    SessionConfig(providers=names)
    return names
