"""The real runtime with its encoder and predictor calls counted (what a clip costs, counted, not timed)."""


class CountingRuntime:
    """Wraps a VLJepaRuntime: ``calls`` counts encode calls, the clips they encoded, and predict calls."""

    def __init__(self, runtime):
        self._runtime = runtime
        self.calls = {"encode": 0, "encoded_clips": 0, "predict": 0}

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def encode(self, clips):
        self.calls["encode"] += 1
        self.calls["encoded_clips"] += len(clips)
        return self._runtime.encode(clips)

    def predict(self, tokens, query):
        self.calls["predict"] += 1
        return self._runtime.predict(tokens, query)
