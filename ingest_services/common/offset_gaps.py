"""Re-read a partition when the broker hands over records past a gap in its offsets.

Why: the embedded broker (Tansu) reserves a batch's offsets (moves the partition's high
watermark) *before* it stores the batch, and its fetch serves whatever batches are stored
below the watermark (tansu's object-store engine, ``produce`` then ``fetch``). With two
producers writing into one partition, a fetch can land in between: batch B (offsets
110-119) is stored, batch A (100-109) is not yet; the consumer is handed B, moves on to 120
and never sees A, and its commit makes that final. That is how two gateway workers lost 1
and 3 of ~206,000 requests on Tansu (issue #10's bench runs; docs/operations.md).

On a topic written without transactions and never compacted (every Helios topic) offsets
are contiguous, so a gap in what a consumer is handed can only be that race. The guard drops
the records past the gap and has the caller seek back to the first missing offset, which the
broker serves once the late batch is stored (milliseconds). A gap still there after
``wait_s`` is real (a real Kafka's deleted segment, a topic written by someone else
transactionally): it is accepted, logged and counted, so a consumer never stalls on it.

Off with ``HELIOS_KAFKA_TRANSACTIONS``: commit markers take offsets, gaps are normal there.
``HELIOS_KAFKA_GAP_WAIT_MS=0`` switches the guard off everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ingest_services.common.transactions import Position
from ingest_services.settings import KafkaSettings

log = logging.getLogger(__name__)

# between two re-reads of the same gap: the late batch is stored within milliseconds, and a
# consumer that re-fetches in a tight loop would only compete with the broker for the CPU
REFETCH_PAUSE_S = 0.005


class Msg(Position, Protocol):
    """A consumed message: where it was read (transactions.Position), or an error."""

    def error(self) -> object | None: ...


Partition = tuple[str, int]


# the default wait, for callers handed no settings (HELIOS_KAFKA_GAP_WAIT_MS's default)
DEFAULT_WAIT_S = KafkaSettings.model_fields["kafka_gap_wait_ms"].default / 1000


def gap_wait_s(s: KafkaSettings) -> float:
    """The guard's wait for these settings; 0 (off) when transactions are on."""
    return 0.0 if s.kafka_transactions else s.kafka_gap_wait_ms / 1000


class GapGuard:
    """Tracks the next expected offset of each partition a consumer reads.

    :meth:`split` takes what ``consume()`` returned and gives back the messages to process
    and, per partition with a gap, the offset to seek back to. Call :meth:`forget` for
    partitions assigned or revoked (a new owner starts from its committed offset).
    """

    def __init__(self, wait_s: float, clock: Callable[[], float] = time.monotonic,
                 on_gap: Callable[[str], None] | None = None) -> None:
        self.wait_s = wait_s
        self.clock = clock
        self.on_gap = on_gap  # called with "refetched" or "skipped" (a metric's label)
        self.expected: dict[Partition, int] = {}
        self.first_seen: dict[tuple[Partition, int], float] = {}  # gap → when first seen
        self.refetched = 0  # gaps that filled in on a re-read (the broker race)
        self.skipped = 0  # gaps accepted after wait_s (offsets that never came)

    def forget(self, partitions: Sequence[Partition] | None = None) -> None:
        if partitions is None:
            self.expected.clear()
            self.first_seen.clear()
            return
        for key in partitions:
            self.expected.pop(key, None)
        self.first_seen = {g: t for g, t in self.first_seen.items() if g[0] not in partitions}

    def split(self, msgs: Sequence[Msg]) -> tuple[list[Msg], dict[Partition, int]]:
        keep: list[Msg] = []
        rewind: dict[Partition, int] = {}
        for msg in msgs:
            if msg.error() is not None:  # end-of-partition and errors: the caller's business
                keep.append(msg)
                continue
            key = (msg.topic() or "", msg.partition() or 0)
            if key in rewind:  # past a gap found earlier in this batch: re-read later
                continue
            offset = msg.offset() or 0
            want = self.expected.get(key)
            if want is not None and offset > want:
                gap = (key, want)
                seen = self.first_seen.setdefault(gap, self.clock())
                if self.clock() - seen < self.wait_s:
                    rewind[key] = want
                    continue
                del self.first_seen[gap]
                self.skipped += 1
                if self.on_gap is not None:
                    self.on_gap("skipped")
                log.warning("offsets never delivered: accepted the gap after waiting",
                            extra={"topic": key[0], "partition": key[1], "first": want,
                                   "next": offset, "waited_s": self.wait_s})
            elif self.first_seen and offset == want and (key, want) in self.first_seen:
                del self.first_seen[(key, want)]
                self.refetched += 1
                if self.on_gap is not None:
                    self.on_gap("refetched")
                log.info("offset gap filled on re-read",
                         extra={"topic": key[0], "partition": key[1], "offset": want})
            self.expected[key] = offset + 1
            keep.append(msg)
        return keep, rewind
