"""A leaner record path for one aiokafka consumer: the batch consumer of ingest.

aiokafka turns every fetched record into a :class:`aiokafka.structs.ConsumerRecord`
in Python: a generator step, a ``_consumer_record`` call (two ``len``, a
dataclass of eleven fields, ``tuple(headers)``) and a ``__next__`` wrapper
per record. A py-spy profile of a worker draining preloaded mentions put
that at 15-20% of the event loop (``docs/performance.md``). The ingest
service needs only a record's value, and its key, offset and headers when it
dead-letters one, all of which the C record objects of the fetched batch
already carry.

:func:`lean_records` makes one consumer yield those objects themselves: its
fetcher's result map is swapped for one that gives each new
``PartitionRecords`` a generator without the per-record Python work. Every
batch check of aiokafka stays (CRC, control batches, aborted transactions,
offsets before the fetch position, the position after each record), copied
from ``PartitionRecords._unpack_records`` of aiokafka 0.14 (Apache 2.0). Other
consumers in the process (Faust's) are untouched. If aiokafka's internals are
not what this expects, :func:`lean_records` says so in the log and leaves the
consumer as it is: slower, never wrong.

Records come out with ``offset``, ``timestamp``, ``key``, ``value`` and
``headers`` (a list of ``(str, bytes)``), not ``topic`` and ``partition``:
the caller knows those from the partition they were fetched for.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.consumer import fetcher as _fetcher

log = logging.getLogger(__name__)

_READ_COMMITTED = getattr(_fetcher, "READ_COMMITTED", None)


class _LeanPartitionRecords(_fetcher.PartitionRecords):
    """``PartitionRecords`` that yields the fetched record objects themselves."""

    def __iter__(self) -> Iterator[Any]:
        # ``FetchResult.getall`` loops ``for msg in partition_records``: handing it
        # the generator itself saves a Python ``__next__`` call per record.
        it = self._records_iterator
        return it if it is not None else iter(())

    def _unpack_records(self) -> Iterator[Any]:
        tp = self._tp
        records = self._records
        while records.has_next():
            next_batch = records.next_batch()
            if self._check_crcs and not next_batch.validate_crc():
                raise kafka_errors.CorruptRecordException(f"Invalid CRC - {tp}")
            if self._isolation_level == _READ_COMMITTED and next_batch.producer_id is not None:
                self._consume_aborted_up_to(next_batch.base_offset)
                if next_batch.is_control_batch and self._contains_abort_marker(next_batch):
                    self._aborted_producers.discard(next_batch.producer_id)
                if (
                    next_batch.is_transactional
                    and next_batch.producer_id in self._aborted_producers
                ):
                    self.next_fetch_offset = next_batch.next_offset
                    continue
            if next_batch.is_control_batch:
                self.next_fetch_offset = next_batch.next_offset
                continue
            for record in next_batch:
                offset = record.offset
                if offset < self.next_fetch_offset:
                    continue  # a compressed message set from before the position
                self.next_fetch_offset = offset + 1
                yield record
            self.next_fetch_offset = next_batch.next_offset


class _LeanResults(collections.OrderedDict[Any, Any]):
    """The fetcher's ``tp -> FetchResult`` map; new results get the lean record path."""

    def __setitem__(self, tp: Any, result: Any) -> None:
        records: Any = getattr(result, "_partition_records", None)
        if type(records) is _fetcher.PartitionRecords:
            # Its generator has not started (FetchResult only stores it), so
            # swapping the class and the generator loses nothing.
            records.__class__ = _LeanPartitionRecords
            records._records_iterator = records._unpack_records()
        super().__setitem__(tp, result)


def _supported(consumer: AIOKafkaConsumer) -> str | None:
    """Why the lean path cannot be used with this aiokafka (None: it can)."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None:
        return "the consumer has no fetcher (not started)"
    if type(getattr(fetcher, "_records", None)) is not collections.OrderedDict:
        return "Fetcher._records is not an OrderedDict"
    needed = (
        "_records_iterator",
        "_unpack_records",
        "_consume_aborted_up_to",
        "_contains_abort_marker",
        "next_fetch_offset",
    )
    init = getattr(_fetcher.PartitionRecords.__init__, "__code__", None)
    names = set(init.co_names) if init is not None else set()
    missing = [n for n in needed if not hasattr(_fetcher.PartitionRecords, n) and n not in names]
    if missing:
        return f"PartitionRecords has no {', '.join(missing)}"
    if _READ_COMMITTED is None:
        return "aiokafka.consumer.fetcher has no READ_COMMITTED"
    return None


def lean_records(consumer: AIOKafkaConsumer) -> bool:
    """Give a started consumer the lean record path; False (and a warning) if unsupported.

    Call it right after ``await consumer.start()``; results fetched before it
    keep aiokafka's ``ConsumerRecord`` (which has the same attributes and more).
    """
    why = _supported(consumer)
    if why is not None:
        log.warning("ingest consumer keeps aiokafka's record path: %s", why)
        return False
    fetcher = consumer._fetcher
    if type(fetcher._records) is not _LeanResults:
        fetcher._records = _LeanResults(fetcher._records)
    return True
