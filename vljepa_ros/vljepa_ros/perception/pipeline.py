"""Cameras' frames in, stamped embeddings and world-state transitions out: the perception core without ROS.

Used by the perception node (frames from subscriptions, ``step`` on a worker thread), the replay tool (frames
from a bag, ``step`` inline) and the benchmarks (``run_clips`` on hand-built clips).

Flow::

    offer_frame(camera, frame_id, stamp_ns, rgb)          # any thread; cheap unless the frame is sampled
      -> ClipBuffer (per camera, model frame rate)     # sampled frames are resized, cropped, normalised once
      -> ReadyQueue (keep-latest, oldest dropped and counted as drops["worker_behind"])
    step(timeout_s) / run_clips(clips)                  # worker: ONE encoder call for every ready camera
      -> BatchResult(embeddings=[EmbeddingResult], transitions=[TransitionResult])

Each EmbeddingResult carries the stamp of the newest frame of its clip (``stamp_ns``) and of the oldest
(``clip_start_ns``). A TransitionResult compares the clip now with the clip ``transition_horizon_s`` ago:
cosine distance of the two visual states, the predicted embedding for the transition query on a
WorldPrediction-style clip (before frames, then after frames), and the top-k entries of the action vocabulary.

Public API (stable; the replay tool and benchmarks rely on it): PerceptionPipeline and VocabularyError here;
the results it returns and the DROP_* reasons it counts are in perception/results.py, the worker thread that
runs ``step`` in perception/worker.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.perception.clip_buffer import SAMPLE, SKIP_OUT_OF_ORDER, Clip, ClipBuffer, ReadyQueue, StateHistory
from vljepa_ros.perception.config import ConfigError, PipelineConfig, check_query, check_vocabulary
from vljepa_ros.perception.image_conversion import ImageConversionError
from vljepa_ros.perception.results import (
    DROP_DISABLED,
    DROP_INFERENCE_ERROR,
    DROP_OUT_OF_ORDER,
    DROP_WORKER_BEHIND,
    BatchResult,
    EmbeddingResult,
    TransitionResult,
)
from vljepa_ros.perception.run_stats import StreamStats
from vljepa_ros.perception.thin_frame_crop import is_thin, thin_frame_crop
from vljepa_ros.perception.transition_policy import transitions_wanted
from vljepa_ros.runtime.preprocessing import (
    normalisation_constants,
    resize_and_crop,
    resized_crop_float,
    resized_size,
)
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

# Longest a producer waits for an idle worker to take the clip it queued (ReadyQueue.hand_off); an idle
# worker takes it almost at once, so the bound only matters on a machine too loaded to schedule the worker.
HAND_OFF_TIMEOUT_S = 0.002


class VocabularyError(ValueError):
    """A query or vocabulary change that cannot be applied; the previous value stays in force."""


class PerceptionPipeline:
    """One model serving any number of cameras (cameras are added on their first frame).

    ``runtime`` is a VLJepaRuntime (or anything with its API). ``text_encoder`` (texts -> (N, E) float32)
    allows action vocabularies outside the model's action bank; without it a vocabulary must be a subset
    of the bank. ``clock_ns`` timestamps arrivals for rate statistics (monotonic wall time by default).
    ``transition_readers`` says whether transitions have a reader now (the node: a subscriber); None: every
    result is kept (replay, benchmarks), so transitions are always read.
    """

    def __init__(
        self,
        runtime,
        config: PipelineConfig = PipelineConfig(),
        text_encoder: Callable[[Sequence[str]], np.ndarray] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        transition_readers: Callable[[], bool] | None = None,
    ):
        self.runtime = runtime
        self._transition_readers = transition_readers
        self.config = config
        manifest = runtime.manifest
        self.clip_spec = manifest.clip
        self.model_id = manifest.model_id
        self.model_version = manifest.version
        self.frame_rate_hz = config.frame_rate_hz or manifest.clip.frame_rate_hz
        self._text_encoder = text_encoder
        self.clock_ns = clock_ns
        self._query = self._initial_query("query", config.query, "caption")
        self._transition_query = self._initial_query("transition_query", config.transition_query, "transition")
        self._bank = runtime.load_bank("actions") if "actions" in manifest.banks else None
        self._actions: TextBank | None = None
        if self._bank is not None or config.action_vocabulary:
            try:
                self._actions = self._vocabulary_bank(config.action_vocabulary)
            except VocabularyError as err:
                raise ConfigError("action_vocabulary", str(err)) from None
        scale, offset = normalisation_constants(self.clip_spec)
        self._scale, self._offset = scale, offset
        # uint8 value -> normalised float32 per channel, built with preprocess_clip's own float32 arithmetic
        # (v * scale + offset), so looking values up gives bit-identical clips faster than recomputing them.
        # Shaped (256, 1, 3) for cv2.LUT, which maps all three channels in one pass.
        self._lut = (np.arange(256, dtype=np.float32)[:, None] * scale + offset).reshape(256, 1, 3)
        # Fused encoders take uint8 (T, H, W, 3) frames at the exported size; normalise_in_graph ones the uint8
        # crop (T, S, S, 3); others the normalised crop as (3, T, S, S) float32 planes.
        encoder_input = manifest.encoder.inputs[0]
        fused = manifest.encoder.fused_preprocessing
        self._fused_size = tuple(encoder_input.shape[2:4]) if fused else None
        self._uint8_crops = manifest.encoder.normalise_in_graph
        self._frames_first = fused or self._uint8_crops
        self._input_shape = tuple(encoder_input.shape[1:])
        self._input_dtype = np.uint8 if encoder_input.dtype == "uint8" else np.float32
        # Held while clip buffers or statistics change (producer threads, the worker); readers of ``stats``
        # on other threads (diagnostics) take it too. Re-entrant so stats_for works inside it.
        self.lock = threading.RLock()
        self._buffers: dict[str, ClipBuffer] = {}
        self._states: dict[str, StateHistory] = {}
        self.stats: dict[str, StreamStats] = {}
        self.frames_subsampled: dict[str, int] = {}
        self.frames_sampled: dict[str, int] = {}
        self.queue = ReadyQueue(config.queue_depth)
        # camera -> (encoder input, the frames already copied into its first slots) for the camera's next clip,
        # laid out by the producer while the worker runs the model (see _lay_out_next_input).
        self._next_inputs: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {}
        self._needs_states = config.publish_visual_state or config.transition_horizon_s > 0
        self.enabled = True

    @classmethod
    def from_manifest(
        cls, manifest_path: str | Path, config: PipelineConfig = PipelineConfig(), providers=("cpu",), **kwargs
    ):
        """Load the runtime from a manifest and build a pipeline around it."""
        return cls(VLJepaRuntime.from_manifest(manifest_path, providers=tuple(providers)), config, **kwargs)

    # ----- configuration that may change while running -------------------------------------------------

    @property
    def query(self) -> str:
        """The query whose predicted embedding is published for every clip."""
        return self._query

    @property
    def transition_query(self) -> str:
        """The query the transition clip is answered with (the model's "what changed" by default)."""
        return self._transition_query

    @property
    def action_vocabulary(self) -> tuple[str, ...]:
        """The texts transitions are ranked against (empty when the model has no action bank)."""
        return () if self._actions is None else self._actions.texts

    def set_query(self, query: str) -> None:
        """Use ``query`` from the next batch on; raises VocabularyError (old query kept) if it is invalid."""
        self._query = self._checked_query("query", query)

    def set_transition_query(self, query: str) -> None:
        """Use ``query`` for transitions from the next batch on; raises VocabularyError if invalid."""
        self._transition_query = self._checked_query("transition_query", query)

    def set_action_vocabulary(self, texts: Sequence[str]) -> None:
        """Rank transitions against ``texts`` (empty: the model's whole action bank); raises VocabularyError."""
        try:
            texts = check_vocabulary("action_vocabulary", texts)
        except ConfigError as err:
            raise VocabularyError(str(err)) from None
        self._actions = self._vocabulary_bank(texts)

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: frames are counted as drops["disabled"], buffers and waiting clips are discarded."""
        with self.lock:
            self.enabled = bool(enabled)
            if not self.enabled:
                self.discard_pending()

    def discard_pending(self) -> None:
        """Forget the frames in the clip buffers and drop the waiting clips (counted as drops["disabled"]):
        after a pause, no clip spans it and no clip from before it is run."""
        with self.lock:
            self._next_inputs.clear()
            for buffer in self._buffers.values():
                buffer.reset()
            for clip in self.queue.clear():
                self.stats[clip.camera].drops[DROP_DISABLED] += 1

    # ----- producer side ------------------------------------------------------------------------------

    def offer_frame(
        self,
        camera: str,
        frame_id: str,
        stamp_ns: int,
        rgb: np.ndarray | Callable[[], np.ndarray],
        validate: Callable[[], None] | None = None,
    ) -> str:
        """Hand one camera frame to the pipeline; returns what happened to it.

        ``rgb`` is an RGB uint8 (H, W, 3) array or a callable producing one: the callable (an image
        conversion) only runs for frames the sampler keeps. ``validate`` (e.g. image_conversion.check_image
        bound to the message) runs for every frame, so malformed input is counted even when the sampler
        would have skipped it. An ImageConversionError from either is counted in
        ``stats[camera].malformed[reason]`` and re-raised for the caller to log; the sampling slot stays
        open so the next good frame takes it.
        Returns "queued" (a clip became ready), "sampled", "rate" (skipped to keep the model frame rate),
        "out_of_order" or "disabled" (the last two also counted as drops). A "queued" call returns only once
        an idle worker has taken the clip (at most HAND_OFF_TIMEOUT_S; see ReadyQueue.hand_off).
        """
        with self.lock:
            stats = self._camera(camera)
            received_ns = self.clock_ns()
            stats.on_input(received_ns, stamp_ns)
            if validate is not None:
                try:
                    validate()
                except ImageConversionError as err:
                    stats.malformed[err.reason] += 1
                    raise
            verdict = self._sampling_verdict(camera, stamp_ns)
            if verdict != SAMPLE:
                return verdict
        # Decoding and resizing run outside the lock, so the worker and diagnostics never wait for a JPEG.
        try:
            prepared = self.prepare_frame(rgb() if callable(rgb) else rgb)
        except ImageConversionError as err:
            with self.lock:
                stats.malformed[err.reason] += 1
            raise
        with self.lock:
            # Re-checked: the pipeline may have been disabled, or the camera offered newer frames meanwhile.
            verdict = self._sampling_verdict(camera, stamp_ns)
            if verdict != SAMPLE:
                return verdict
            self.frames_sampled[camera] += 1
            clip = self._buffers[camera].add(
                stamp_ns, frame_id, prepared, received_ns, lambda frames: self._clip_input_of(camera, frames)
            )
            if clip is None:
                return "sampled"
            if self.queue.put(clip) is not None:
                stats.drops[DROP_WORKER_BEHIND] += 1
        self.queue.hand_off(clip, HAND_OFF_TIMEOUT_S)
        self._lay_out_next_input(clip)
        return "queued"

    def _clip_input_of(self, camera: str, frames: tuple[np.ndarray, ...]) -> np.ndarray:
        """The encoder input (no batch axis) of a clip being emitted, in the input laid out ahead for it:
        only frames not already in their slot are copied (with stride 1, just the newest). Lock held."""
        array, placed = self._next_inputs.pop(camera, (None, ()))
        if array is None:
            array = self._empty_inputs(1)[0]
        slots = _time_slots(array, self._frames_first)
        for t, frame in enumerate(frames):
            if t >= len(placed) or placed[t] is not frame:
                slots[t] = frame
        return array

    def _lay_out_next_input(self, clip: Clip) -> None:
        """Copy the frames the camera's next clip shares with ``clip`` into a fresh input for it.

        Runs on the producer after the hand-off, while the worker runs the model, so the clip that completes
        next waits for one frame copy instead of T. A frame that is not where the next clip needs it (a reset,
        a disable, another stride) is simply copied then.
        """
        shared = clip.frames[self.config.stride :]
        if not shared:
            return
        array = self._empty_inputs(1)[0]
        slots = _time_slots(array, self._frames_first)
        for t, frame in enumerate(shared):
            slots[t] = frame
        with self.lock:
            self._next_inputs[clip.camera] = (array, shared)

    def _sampling_verdict(self, camera: str, stamp_ns: int) -> str:
        """SAMPLE, or why not (counted here for drops, and for sub-sampling). Call with the lock held."""
        stats = self.stats[camera]
        if not self.enabled:
            stats.drops[DROP_DISABLED] += 1
            return DROP_DISABLED
        verdict = self._buffers[camera].check(stamp_ns)
        if verdict == SKIP_OUT_OF_ORDER:
            stats.drops[DROP_OUT_OF_ORDER] += 1
            return DROP_OUT_OF_ORDER
        if verdict != SAMPLE:
            self.frames_subsampled[camera] += 1
        return verdict

    def subsampled(self, camera: str) -> int:
        """Frames of ``camera`` skipped on purpose to keep the model frame rate (not drops)."""
        with self.lock:
            return self.frames_subsampled.get(camera, 0)

    def sampled(self, camera: str) -> int:
        """Frames of ``camera`` taken into its clip buffer: with the malformed, sub-sampled, out-of-order and
        disabled ones, every frame offered is counted exactly once."""
        with self.lock:
            return self.frames_sampled.get(camera, 0)

    def clip_resets(self, camera: str) -> dict[str, int]:
        """How often ``camera``'s clip buffer started over, by reason (clip_buffer.RESET_*)."""
        with self.lock:
            buffer = self._buffers.get(camera)
            return {} if buffer is None else dict(buffer.resets)

    def record_output(
        self, camera: str, now_ns: int, latency_s: float, processing_s: float, inference_s: float
    ) -> None:
        """Count a published result of ``camera`` (see StreamStats.on_output), under the lock."""
        with self.lock:
            self._camera(camera).on_output(now_ns, latency_s, processing_s, inference_s)

    def record_drop(self, camera: str, reason: str) -> None:
        """Count a result of ``camera`` lost after the pipeline produced it (e.g. its message failed to build)."""
        with self.lock:
            self._camera(camera).drops[reason] += 1

    def stats_for(self, camera: str) -> StreamStats:
        """The statistics of ``camera`` (empty ones for a camera that has sent nothing yet); hold ``lock``
        while reading them from a thread other than the producers'."""
        with self.lock:
            return self._camera(camera)

    def _camera(self, camera: str) -> StreamStats:
        if camera not in self.stats:
            self._buffers[camera] = ClipBuffer(
                camera,
                frames=self.clip_spec.frames,
                frame_rate_hz=self.frame_rate_hz,
                stride=self.config.stride,
                transition_horizon_s=self.config.transition_horizon_s,
            )
            keep_s = self.config.transition_horizon_s + (self.clip_spec.frames + 2) / self.frame_rate_hz
            self._states[camera] = StateHistory(keep_s)
            self.stats[camera] = StreamStats()
            self.frames_subsampled[camera] = 0
            self.frames_sampled[camera] = 0
        return self.stats[camera]

    def prepare_frame(self, frame: np.ndarray) -> np.ndarray:
        """The per-frame part of the manifest's preprocessing, done once per sampled frame.

        Unfused: short-side resize, centre crop and normalisation to a (3, S, S) float32 plane stack, so a
        frame shared by T overlapping clips is normalised once, not T times; for an encoder that normalises in
        its graph, the (S, S, 3) uint8 crop. Fused: resize to the encoder's input size, uint8 (as
        preprocessing.stack_frames does). The result never views ``frame`` (which may view a message buffer).
        Raises ImageConversionError(bad_shape) unless ``frame`` is RGB uint8 (H, W, 3).
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ImageConversionError("bad_shape", f"expected an RGB uint8 (H, W, 3) frame, got {got}")
        height, width = frame.shape[:2]
        antialias = self.clip_spec.resize_antialias
        # A frame resized whole would be far larger than its crop (1 x 100000): only the crop is computed (the
        # antialiased resize computes only the crop anyway).
        thin = self._fused_size is None and not antialias and is_thin(height, width, self.clip_spec)
        if self._uint8_crops:
            if thin:
                return thin_frame_crop(frame, self.clip_spec)
            crop = resize_and_crop(frame, self.clip_spec)
            if resized_size(height, width, self.clip_spec.resize_short) == (height, width):
                return crop.copy()  # no resize happened: the crop views ``frame``
            return crop  # a view of the freshly resized frame, which nothing else holds
        if self._fused_size is None and antialias:
            # The float crop as the model saw it in training; same arithmetic as preprocess_clip, bit for bit.
            normalised = resized_crop_float(frame, self.clip_spec) * self._scale + self._offset
            return np.ascontiguousarray(normalised.transpose(2, 0, 1))
        if self._fused_size is None:
            crop = thin_frame_crop(frame, self.clip_spec) if thin else resize_and_crop(frame, self.clip_spec)
            cropped = np.ascontiguousarray(crop)
            return np.ascontiguousarray(cv2.LUT(cropped, self._lut).transpose(2, 0, 1))
        height, width = self._fused_size
        if frame.shape[:2] == (height, width):
            return np.array(frame, dtype=np.uint8, copy=True)
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)

    # ----- worker side -------------------------------------------------------------------------------

    def step(self, timeout_s: float | None = 0.0) -> BatchResult | None:
        """Take the ready clips (one per camera, up to max_batch) and run them; None if none came in time."""
        clips = self.queue.take_batch(self.config.max_batch, timeout_s)
        if not clips:
            return None
        try:
            return self.run_clips(clips)
        except Exception:
            with self.lock:
                for clip in clips:
                    self.stats[clip.camera].drops[DROP_INFERENCE_ERROR] += 1
            raise

    def run_clips(self, clips: Sequence[Clip]) -> BatchResult:
        """Run one batch: one encoder call for all clips, their look-back clips and transition clips."""
        query, transition_query, actions = self._query, self._transition_query, self._actions
        with_transitions = [c for c in clips if c.before is not None] if self.transitions_wanted() else []
        # Look-back states come from history; a clip dropped while the worker was behind is encoded now.
        missing_before = [c.before for c in with_transitions if self._states[c.camera].get(c.before.stamp_ns) is None]
        frame_sets = [c.frames for c in clips] + [c.frames for c in missing_before]
        frame_sets += [self._transition_frames(c.before.frames, c.frames) for c in with_transitions]
        inputs = self._encoder_batch(frame_sets, [c.encoder_input for c in clips])
        n, m = len(clips), len(missing_before)

        start = time.perf_counter()
        # Visual states only when published or compared by transitions.
        if self._needs_states or with_transitions:
            tokens = self.runtime.encode(inputs)
            states = self.runtime.visual_state(tokens[: n + m]) if self._needs_states else None
            embeddings = self.runtime.predict(tokens[:n], query)
            moves = self.runtime.predict(tokens[n + m :], transition_query) if with_transitions else None
        else:  # only embeddings: on a GPU the tokens then never leave it (runtime.embed)
            states = moves = None
            embeddings = self.runtime.embed(inputs, query)
        inference_s = time.perf_counter() - start

        before_states = {id(c): states[n + i] for i, c in enumerate(missing_before)}
        results = []
        for i, clip in enumerate(clips):
            if self.config.transition_horizon_s > 0:
                self._states[clip.camera].record(clip.stamp_ns, states[i])
            results.append(
                EmbeddingResult(
                    camera=clip.camera,
                    frame_id=clip.frame_id,
                    stamp_ns=clip.stamp_ns,
                    clip_start_ns=clip.clip_start_ns,
                    num_frames=len(clip.frames),
                    query=query,
                    embedding=embeddings[i],
                    visual_state=states[i] if self.config.publish_visual_state else None,
                    model_id=self.model_id,
                    model_version=self.model_version,
                    received_ns=clip.received_ns,
                    inference_s=inference_s,
                )
            )
        transitions = []
        after_states = {id(c): states[i] for i, c in enumerate(clips)} if with_transitions else {}
        for j, clip in enumerate(with_transitions):
            before = before_states.get(id(clip.before))
            if before is None:
                before = self._states[clip.camera].get(clip.before.stamp_ns)
            move = moves[j]
            ranked = actions.top_k(move, self.config.top_k) if actions is not None else []
            transitions.append(
                TransitionResult(
                    camera=clip.camera,
                    frame_id=clip.frame_id,
                    stamp_ns=clip.stamp_ns,
                    before_stamp_ns=clip.before.stamp_ns,
                    state_distance=cosine_distance(before, after_states[id(clip)]),
                    query=transition_query,
                    transition_embedding=move,
                    action_labels=tuple(label for label, _ in ranked),
                    action_scores=tuple(score for _, score in ranked),
                    model_id=self.model_id,
                    model_version=self.model_version,
                )
            )
        return BatchResult(tuple(results), tuple(transitions), len(inputs), inference_s)

    def transitions_wanted(self) -> bool:
        """Whether the next batch computes transitions (perception/transition_policy.py)."""
        readers = self._transition_readers is None or bool(self._transition_readers())
        return transitions_wanted(self.config.compute_transitions, self.config.transition_horizon_s, readers)

    def clip_input(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared frames (see ``prepare_frame``) -> one encoder input, equal to runtime.prepare_clip(raw frames):
        (3, T, S, S) float32 unfused, (T, S, S, 3) uint8 normalised in the graph, (T, H, W, 3) uint8 fused."""
        return self._encoder_batch([frames])[0]

    def transition_input(self, before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> np.ndarray:
        """WorldPrediction-style input from prepared frames, equal to runtime.transition_clip(before, after):
        the first half of the clip shows the "before" clip, the second half the "after" clip, each sampled
        evenly over its frames (first and last kept)."""
        return self.clip_input(self._transition_frames(before, after))

    def _transition_frames(self, before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> list[np.ndarray]:
        total = self.clip_spec.frames
        half = total // 2
        return _evenly(before, half) + _evenly(after, total - half)

    def _encoder_batch(
        self, frame_sets: Sequence[Sequence[np.ndarray]], laid_out: Sequence[np.ndarray | None] = ()
    ) -> np.ndarray:
        """Prepared frames of B clips (T each) -> the (B, ...) encoder batch of their ``clip_input``s.

        ``laid_out[i]``, when not None, is clip i's input already built (Clip.encoder_input): one copy, or none
        at all for a batch of one. Other clips' frames are copied once each, straight into their place
        (stacking clips and then clips into a batch copied every frame twice).
        """
        if len(frame_sets) == 1 and laid_out and laid_out[0] is not None:
            return laid_out[0][None]
        batch = self._empty_inputs(len(frame_sets))
        for i, (row, clip_frames) in enumerate(zip(batch, frame_sets)):
            if i < len(laid_out) and laid_out[i] is not None:
                row[...] = laid_out[i]
                continue
            slots = _time_slots(row, self._frames_first)
            for t, frame in enumerate(clip_frames):
                slots[t] = frame
        return batch

    def _empty_inputs(self, batch: int) -> np.ndarray:
        """An uninitialised (batch, ...) encoder input of the manifest's shape and dtype."""
        return np.empty((batch, *self._input_shape), dtype=self._input_dtype)

    def close(self) -> None:
        """Release a worker blocked in ``step``."""
        self.queue.close()

    # ----- helpers -------------------------------------------------------------------------------------

    def default_query(self, kind: str) -> str:
        """The manifest's default query of ``kind`` ("caption" or "transition")."""
        queries = self.runtime.manifest.queries
        if kind not in queries:
            parameter = "query" if kind == "caption" else f"{kind}_query"
            raise ConfigError(parameter, f"not set and the model manifest has no default queries.{kind}")
        return queries[kind]

    def _initial_query(self, parameter: str, query: str | None, kind: str) -> str:
        try:
            return self._checked_query(parameter, query if query is not None else self.default_query(kind))
        except VocabularyError as err:
            raise ConfigError(parameter, str(err)) from None

    def _checked_query(self, name: str, query: str) -> str:
        """A query the model can read: non-empty, within max_tokens, at least one known word."""
        try:
            query = check_query(name, query)
            tokens = self.runtime.query_tokens(query)
        except ConfigError as err:
            raise VocabularyError(str(err)) from None
        except ValueError as err:
            raise VocabularyError(f"{name}: {err}") from None
        if int(tokens.mask.sum()) == len(tokens.unknown_words):
            raise VocabularyError(f"{name}: no word of {query!r} is in the model's query vocabulary")
        return query

    def _vocabulary_bank(self, texts: tuple[str, ...]) -> TextBank:
        if not texts:
            if self._bank is None:
                raise VocabularyError("action_vocabulary: empty and the model has no action bank to default to")
            return self._bank
        if self._bank is not None and all(t in self._bank.texts for t in texts):
            index = {t: i for i, t in enumerate(self._bank.texts)}
            return TextBank(texts, self._bank.embeddings[[index[t] for t in texts]])
        if self._text_encoder is None:
            unknown = [t for t in texts if self._bank is None or t not in self._bank.texts]
            raise VocabularyError(
                f"action_vocabulary: {unknown[:3]!r} not in the model's action bank and no text encoder is loaded"
            )
        return TextBank.from_embeddings(texts, np.asarray(self._text_encoder(list(texts)), np.float32))


def _time_slots(clip_input: np.ndarray, frames_first: bool) -> np.ndarray:
    """A (T, ...) view of one encoder input whose index t is frame t's slot."""
    return clip_input if frames_first else clip_input.swapaxes(0, 1)


def _evenly(frames: Sequence[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` frames spaced evenly over ``frames``, first and last included (the runtime's rule)."""
    index = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in index]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) for two vectors, clipped to [0, 2] (rounding can leave it just outside)."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.clip(1.0 - cos, 0.0, 2.0))
