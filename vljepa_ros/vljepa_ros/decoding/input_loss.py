"""Count messages lost between a publisher and the subscription callback from the publishers' sequence numbers.

vljepa_msgs/Embedding carries no sequence number of its own, but the middleware numbers every sample a writer
sends (rmw `publication_sequence_number`, per publisher). A gap between two samples of one publisher is samples
dropped on the way: overwritten in the writer's or the subscription's history, or lost by the transport; a
DDS SAMPLE_LOST event only reports the last kind. Pure Python.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_PUBLISHERS = 256  # publishers remembered; the least recently heard one is forgotten first


class SequenceGapCounter:
    """Per-publisher last sequence number; `lost` is the total of the gaps seen so far."""

    def __init__(self, max_publishers: int = MAX_PUBLISHERS):
        self._max_publishers = max_publishers
        self._last: OrderedDict[bytes, int] = OrderedDict()
        self.lost = 0
        self.unnumbered = 0  # samples without a sequence number (rmw that does not report it)

    @property
    def publishers(self) -> int:
        return len(self._last)

    def observe(self, publisher: bytes | None, sequence: int | None) -> int:
        """Record one received sample; return how many of `publisher`'s samples were lost just before it.

        The first sample of a publisher only sets the baseline (what it sent before the match is not lost).
        A sequence number at or below the last one (a duplicate, or a reordered sample) counts nothing.
        """
        if publisher is None or sequence is None:
            self.unnumbered += 1
            return 0
        last = self._last.pop(publisher, None)
        self._last[publisher] = sequence if last is None else max(last, sequence)
        if len(self._last) > self._max_publishers:
            self._last.popitem(last=False)
        gap = 0 if last is None else max(0, sequence - last - 1)
        self.lost += gap
        return gap
