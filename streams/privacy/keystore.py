"""Where data keys live: the KeyStore interface, and its local default on carelog.keys
(and carelog.keys.messages for the per-message keys).

A data key (DEK) is named by a key id: `patient:<id>/<random>` for one patient's data,
`msg:<event id>` for a message not yet tied to a patient. A patient may have several keys
(two processes meeting a new patient at once each make one; both stay valid), so erasing a
patient shreds every id under its prefix. Shredding a key makes everything sealed with it
unreadable for good: that is how an immutable log forgets a person.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.admin import topic_identity
from streams.consumer import MAX_PER_READ, take_ready
from streams.errors import DeliveryFailed
from streams.kafka_config import client_config, producer_config
from streams.privacy.aead import new_key, open_sealed, random_id, seal
from streams.privacy.key_cache import KeyCache, prefix_of
from streams.privacy.master import master_key
from streams.privacy.prefix_filter import PrefixFilter
from streams.settings import Settings
from streams.topics import KEYS, MESSAGE_KEYS_SUFFIX

log = logging.getLogger(__name__)
MESSAGE_KEYS = "msg:"  # the kind of the per-message keys (message_keys.py)
CIPHERS_KEPT = 4096  # cipher objects of the keys used last (about 2.5 KB each)
# Patient and type keys read last, kept wrapped by id and prefix (about 200 bytes each): what
# is looked up next is mostly what just came (the store projection opening the first change
# a new key sealed, the edge meeting that patient's next message), and it is found without
# the cache file. More while more wait for the file: a key leaves this memory only once the
# file has it.
LATELY_KEPT = 8192
# The cache file is written when this many records wait, on a shred (at once), and at close.
# Every process keeps every key, and a random insert into the file's B-tree costs less the
# more come at once: 12.5 µs CPU a key in batches of 2,048 and 6 in batches of 32,768 (a file
# of 200,000 keys). A crash loses nothing: the file's position is that of what it holds, and
# a restart reads the rest again (at most this many records).
SAVE_RECORDS = 16_384
# How often the store's thread takes the key records its readers fetched: lookups then find
# them in memory, and never call into the Kafka client or the cache file to look (each such
# call lets go of the interpreter lock, and a busy process waits for it back: prefix_filter).
DRAIN_SECONDS = 0.1


def _position_after(msg: Message, position: int) -> int:
    """Where a reader of carelog.keys stands after a polled record, or after an
    end-of-partition notice (past trailing markers and compacted gaps too)."""
    err = msg.error()
    if err is None:
        return (msg.offset() or 0) + 1
    if err.code() == KafkaError._PARTITION_EOF:
        return max(position, msg.offset() or 0)
    return position


class KeyStore(Protocol):
    """A key management service as carelog needs it (a cloud KMS can implement this)."""

    def cipher(self, key_id: str) -> AESGCM | None:
        """The cipher of an existing key; None when it was shredded or never existed."""
        ...

    def key_for(self, prefix: str) -> tuple[str, AESGCM]:
        """A live key under `prefix` (`patient:<id>`), made when there is none."""
        ...

    def current(self, prefix: str) -> tuple[str, AESGCM] | None:
        """A live key under `prefix` that is on the log already; None when there is none
        (nothing is made: for the edge, which must not wait for a new key's round trip)."""
        ...

    def create_many(self, kind: str, count: int) -> list[tuple[str, AESGCM]]:
        """`count` new keys `<kind>:<random>` (per-message keys), confirmed together."""
        ...

    def key_ids(self, prefix: str) -> list[str]:
        """Live key ids equal to `prefix` or under `prefix/`."""
        ...

    def shred(self, key_ids: Iterable[str]) -> list[str]:
        """Delete these keys for good; returns those that existed."""
        ...

    def shredded(self, key_ids: Iterable[str]) -> set[str]:
        """Those of `key_ids` this process knows to be shredded (here or by another process,
        seen within its refresh time): a reader that opened events with them before the
        shred checks this before it writes what it read (carelog erase deletes it)."""
        ...

    def shreds_seen(self) -> int:
        """How many shreds this process has taken so far: a computation that opened events
        and sealed its outputs runs again if this moved meanwhile (a key it opened with may
        be gone, and a new key of the same patient would seal what was erased)."""
        ...


def _cache(settings: Settings, topic: str, directory: Path | None) -> KeyCache:
    """The local copy of `topic` (in memory when `directory` is None). A copy is trusted for
    half the topic's delete.retention.ms: a shred's tombstone stays on the topic that long
    at least after compaction."""
    try:
        topic_id, delete_retention = topic_identity(settings, topic)
    except (KafkaException, KeyError) as exc:  # no such topic yet: nothing to trust
        log.info("%s: no topic id (%s): its local copy is read again", topic, exc)
        topic_id, delete_retention = None, 0.0
    return KeyCache(directory, topic, topic_id, delete_retention / 2)


def _under(key_id: str, prefix: str) -> bool:
    return key_id == prefix or key_id.startswith(prefix + "/")


class MemoryKeyStore:
    """Keys in this process only: unit tests and one-process tools."""

    def __init__(self) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._current: dict[str, str] = {}
        self._gone: set[str] = set()
        self._shreds = 0

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._keys.get(key_id)

    def key_for(self, prefix: str) -> tuple[str, AESGCM]:
        key_id = self._current.get(prefix)
        if key_id is None or key_id not in self._keys:
            key_id = f"{prefix}/{random_id(6)}"
            self._current[prefix] = key_id
            self._keys[key_id] = AESGCM(new_key())
        return key_id, self._keys[key_id]

    def current(self, prefix: str) -> tuple[str, AESGCM] | None:
        key_id = self._current.get(prefix)
        return None if key_id is None or key_id not in self._keys else (key_id, self._keys[key_id])

    def create_many(self, kind: str, count: int) -> list[tuple[str, AESGCM]]:
        made = [(f"{kind}:{random_id(16)}", AESGCM(new_key())) for _ in range(count)]
        self._keys.update(made)
        return made

    def key_ids(self, prefix: str) -> list[str]:
        return sorted(k for k in self._keys if _under(k, prefix))

    def shred(self, key_ids: Iterable[str]) -> list[str]:
        found = [k for k in key_ids if self._keys.pop(k, None) is not None]
        self._gone.update(found)
        self._shreds += len(found)
        return found

    def shredded(self, key_ids: Iterable[str]) -> set[str]:
        return self._gone.intersection(key_ids)

    def shreds_seen(self) -> int:
        return self._shreds


class KafkaKeyStore:
    """Keys on the compacted topic carelog.keys (key id -> DEK wrapped by the master key;
    a tombstone is a shredded key), read by every process that seals or opens.

    A reader that sees an event can always find its key by reading carelog.keys to its end:
    a new key is confirmed on the log before an event sealed with it can be read. By default
    it is confirmed before anything is sealed with it (a round trip per new key, or per
    batch of per-message keys). With `confirm_later` (the worker: its outputs are read only
    once their Kafka transaction commits) new keys are sent at once and confirmed together by
    `confirm()`, which the worker calls before each commit (processors/transactions.py).
    Shreds made by other processes are picked up within `refresh_seconds` (in practice
    DRAIN_SECONDS) by a thread of the store, which also writes the cache file. A lookup
    reads memory (and the file, for a key not used lately); only for a key it has not got
    does it take the fetched records itself, or read the topic to its end.

    The consumer stays assigned, so librdkafka fetches new keys as they come: a lookup first
    takes what it has fetched already (no round trip; a key is on the log before the event
    sealed with it is readable, so it is nearly always there), and reads to the end of the
    topic (a round trip for the end offset) only for a key still missing.

    Per-message keys (`msg:`) come one per message of a new patient, so they live on a
    topic of their own, carelog.keys.messages, read only by a process that opens an event
    sealed with one (the worker; the store projection at its first rejection): the others
    never fetch them. That reader starts `message_keys_kept` keys before the end, and only
    the most recent ones stay in memory (wrapped); an older one (a replay, a rebuild, a
    re-drive) is read again by a second reader that goes on from where it last stopped: the
    keys such a reader needs come in about the order they were made. Patient and type keys
    are about one per patient ever seen: they are copied, wrapped, into a local file with the
    position they were read to (streams/privacy/key_cache.py), so a restart reads only the
    records that came since, and only the `keys_kept` keys used last are kept unwrapped in
    memory. (Message keys made before they had a topic of their own are on carelog.keys: read
    at start-up, and read again from there when needed.)
    """

    def __init__(
        self,
        settings: Settings,
        refresh_seconds: float = 2.0,
        *,
        confirm_later: bool = False,
        message_keys_kept: int = 200_000,
        topic: str = KEYS,
        cache_dir: Path | None = None,
        keys_kept: int = 100_000,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._messages_topic = topic + MESSAGE_KEYS_SUFFIX
        self._master = AESGCM(master_key(settings))
        # Only failed deliveries call back into Python: a success needs no answer (flush
        # says when every record is on the log), and the edge makes 256 keys at once.
        self._producer = Producer(
            producer_config(settings, **{"linger.ms": 0, "delivery.report.only.error": True})
        )
        self._failures: list[str] = []
        self.confirm_later = confirm_later
        self._unsent: list[tuple[str, bytes]] = []  # keys made and not yet sent (confirm_later)
        self._cache = _cache(settings, topic, cache_dir)
        self._filter = PrefixFilter(2 * len(self._cache), self._cache.prefixes())
        self._consumer = self._reader("carelog-keys")
        self._consumer.assign([TopicPartition(self._topic, 0, self._cache.position)])
        # Where each reader of a key topic stands (the main reader: carelog.keys, and the
        # message keys' reader once there is one).
        self._positions: dict[str, int] = {self._topic: self._cache.position}
        self._unsaved: list[tuple[str, bytes | None]] = []  # read, not yet in the cache file
        # Batches of `_unsaved` with the position after them, in order, for `_write`; and
        # the position of the last one.
        self._to_write: deque[tuple[list[tuple[str, bytes | None]], int]] = deque()
        self._saved_to = self._cache.position
        # Held while the cache file is written (after _lock when both are held, never
        # before it): the store's thread writes without the store lock, lookups go on.
        self._writing = threading.Lock()
        self._cache_closed = False
        self._lately: OrderedDict[str, bytes] = OrderedDict()  # patient and type keys read last
        self._lately_under: dict[str, str] = {}  # prefix -> the smallest of its keys there
        self.records_read = 0  # key records this store read (a restart reads only new ones)
        self._messages: Consumer | None = None  # carelog.keys.messages, from the first need
        self._ends: Consumer | None = None  # asks for end offsets only
        # Keys are kept as bytes: a cipher object holds about 2.5 KB (its OpenSSL context)
        # and takes a microsecond to make, so only the recently used ones are kept as such.
        self._keys: OrderedDict[str, bytes] = OrderedDict()  # patient and type keys used last
        self._keys_max = keys_kept
        # Patient and type keys made here and not yet read back into the cache (wrapped).
        self._made: dict[str, bytes] = {}
        self._recent: OrderedDict[str, bytes] = OrderedDict()  # recent message keys, wrapped
        self._recent_max = message_keys_kept
        self._ciphers: OrderedDict[str, AESGCM] = OrderedDict()
        self._back: Consumer | None = None  # reads a key topic again for older message keys
        self._back_positions: dict[str, int] = {}
        # Shredded, or not on the log after reading it to its end: a key is on the log before
        # anything sealed with it can be read, so such a key never comes (ids are random).
        # Without this, every event of an erased patient cost a read to the end of the topic.
        self._gone: set[str] = set()
        self._shreds = 0  # taken: from the topic, or made here
        self._current: OrderedDict[str, str] = OrderedDict()  # prefix -> key, used last
        self._lock = threading.RLock()
        # Held while key records are sent and confirmed outside confirm_later (taken before
        # _lock, never while holding it): see _create.
        self._confirming = threading.Lock()
        self._refresh_seconds = refresh_seconds
        self._read_at = 0.0
        self.catch_up()
        with self._lock:  # what start-up read is in the file: a restart reads on from there
            self._save()
            self._write()
        # Shreds reach memory and the cache file within refresh_seconds in every process,
        # one that looks up no key included (an idle MLLP listener): erasure waits that long.
        self._closed = threading.Event()
        threading.Thread(target=self._refresh_loop, name="carelog-keys", daemon=True).start()

    def _refresh_loop(self) -> None:
        """Take what the readers fetched every DRAIN_SECONDS, and mark the cache file
        current every refresh_seconds. Lookups never do this themselves: they find in
        memory what this took, and the cache file is written here outside the store lock,
        so a lookup never waits for it (16,384 random inserts take a tenth of a second or more)."""
        while not self._closed.wait(min(DRAIN_SECONDS, self._refresh_seconds)):
            try:
                with self._lock:
                    if self._closed.is_set():
                        return
                    refresh = time.monotonic() - self._read_at > self._refresh_seconds
                    self._take_fetched()
                    if refresh:
                        self._read_at = time.monotonic()
                self._write(mark_current=refresh)
            except Exception:  # e.g. the broker away: the next lookup reads anyway
                log.warning("key refresh failed; retrying", exc_info=True)

    def _reader(self, name: str) -> Consumer:
        return Consumer(client_config(self._settings, **{
            "group.id": f"{name}-{uuid.uuid4()}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }))  # fmt: skip

    def _readers(self) -> list[tuple[str, Consumer]]:
        readers = [(self._topic, self._consumer)]
        if self._messages is not None:
            readers.append((self._messages_topic, self._messages))
        return readers

    def catch_up(self) -> None:
        """Read the key topics this process follows up to their current ends."""
        with self._lock:
            for topic, consumer in self._readers():
                high = self._end(topic)
                while self._positions[topic] < high:
                    msg = consumer.poll(1.0)
                    if msg is not None:
                        self._read(topic, msg)
                        if self._to_write:  # a long read (start-up) in bounded memory
                            self._write()
            self._write()
            self._read_at = time.monotonic()

    def _follow_messages(self) -> None:
        """Start reading carelog.keys.messages (the first time a message key is looked up):
        from `message_keys_kept` keys before its end, and on as they come."""
        with self._lock:
            if self._messages is not None:
                return
            consumer = self._reader("carelog-message-keys")
            start = max(0, self._end(self._messages_topic) - self._recent_max)
            consumer.assign([TopicPartition(self._messages_topic, 0, start)])
            self._messages, self._positions[self._messages_topic] = consumer, start
            self.catch_up()

    def _drain(self) -> bool:
        """Take the key records the readers have fetched already (no round trip); whether
        there were any."""
        with self._lock:
            took = self._take_fetched()
            self._write()
        return took

    def _take_fetched(self) -> bool:
        """`_drain` without writing the cache file; under the store lock."""
        took = False
        for topic, consumer in self._readers():
            while batch := take_ready(consumer, MAX_PER_READ, 0):
                for msg in batch:
                    self._read(topic, msg)
                took = True
        return took

    def _save(self) -> None:
        """Queue what was read of carelog.keys for the cache file (`_write`), with the
        position reached: when a shred is read (its secure_delete at once), once SAVE_RECORDS
        wait (`_take`), after start-up and at close; meanwhile the records are in memory
        (`_lately`). A crash before loses nothing: the file's position is that of what it
        holds, and a restart reads on from there. Under the store lock, so batches queue in
        the order they were read."""
        position = self._positions[self._topic]
        if self._unsaved or position != self._saved_to:
            self._to_write.append((self._unsaved, position))
            self._unsaved, self._saved_to = [], position

    def _write(self, mark_current: bool = False) -> None:
        """Write the queued batches to the cache file, in order (one writer at a time), and
        with `mark_current` mark the copy current (this process kept reading until now)."""
        with self._writing:
            if self._cache_closed:
                return
            while self._to_write:
                records, position = self._to_write[0]
                self._cache.write(records, position)
                self._to_write.popleft()  # once written: _read_lately counts it until then
            if mark_current:
                self._cache.still_reading()

    def _read(self, topic: str, msg: Message) -> None:
        """Take one polled key record (or an end-of-partition notice) and move past it."""
        self._positions[topic] = _position_after(msg, self._positions[topic])
        if msg.error() is None:
            self.records_read += 1
            self._take(topic, (msg.key() or b"").decode(), msg.value())

    def _end(self, topic: str) -> int:
        """The end offset of a key topic, waiting out a leader election (a new topic). Asked
        by a client that fetches nothing: a reader's own query waits behind its long-poll
        fetch (up to half a second, each time a lookup misses)."""
        if self._ends is None:
            self._ends = self._reader("carelog-keys-ends")
        deadline = time.monotonic() + 30
        while True:
            try:
                _, high = self._ends.get_watermark_offsets(
                    TopicPartition(topic, 0), timeout=15, cached=False
                )
                return int(high)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _take(self, topic: str, key_id: str, wrapped: bytes | None) -> None:
        if wrapped is None:
            self._forget(key_id)
            self._gone.add(key_id)
            self._shreds += 1
        elif key_id.startswith(MESSAGE_KEYS):
            if key_id not in self._recent:  # else made here: its key never changes
                self._remember(key_id, wrapped)  # unwrapped when used: most never are here
            return
        else:
            self._made.pop(key_id, None)  # on the log: the cache has it from now on
            self._read_lately(key_id, wrapped)
            self._filter.add(prefix_of(key_id))
            if self._filter.full:
                self._grow_filter()
        if topic == self._topic:
            self._unsaved.append((key_id, wrapped))
            if wrapped is None or len(self._unsaved) >= SAVE_RECORDS:
                self._save()  # each path that takes records writes the queue (_write) next

    def _grow_filter(self) -> None:
        """A filter four times as big, of the prefixes in the file and those read since."""
        self._filter = PrefixFilter(4 * self._filter.count, self._cache.prefixes())
        for key_id in self._lately:  # what is not in the file yet is among these
            self._filter.add(prefix_of(key_id))

    def _read_lately(self, key_id: str, wrapped: bytes) -> None:
        """Keep a patient or type key just read (wrapped), forgetting the oldest."""
        self._lately[key_id] = wrapped
        prefix = prefix_of(key_id)
        first = self._lately_under.get(prefix)
        if first is None or key_id < first:
            self._lately_under[prefix] = key_id
        if len(self._lately) > LATELY_KEPT:
            # The newest records are those not in the file yet (this one among them).
            waiting = len(self._unsaved) + 1 + sum(len(batch) for batch, _ in self._to_write)
            while len(self._lately) > max(LATELY_KEPT, waiting):
                self._forget_lately(next(iter(self._lately)))

    def _forget_lately(self, key_id: str) -> None:
        self._lately.pop(key_id, None)
        prefix = prefix_of(key_id)
        if self._lately_under.get(prefix) == key_id:
            del self._lately_under[prefix]  # another key of it, if any, is in the cache file

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes | None:
        try:
            return open_sealed(self._master, wrapped, key_id.encode())
        except ValueError:
            log.error("carelog.keys: key %s does not unwrap with this master key", key_id)
            self._gone.add(key_id)  # what it sealed stays unreadable here: no use looking again
            return None

    def _remember(self, key_id: str, wrapped: bytes) -> None:
        """Keep a per-message key (wrapped), forgetting the least recent."""
        self._recent[key_id] = wrapped
        self._recent.move_to_end(key_id)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    def _forget(self, key_id: str) -> None:
        """Drop a key (shredded, or not on the log): never sealed with again."""
        self._keys.pop(key_id, None)
        self._made.pop(key_id, None)
        self._recent.pop(key_id, None)
        self._ciphers.pop(key_id, None)
        self._forget_lately(key_id)
        prefix = prefix_of(key_id)
        if prefix and self._current.get(prefix) == key_id:
            del self._current[prefix]

    def _cipher_of(self, key_id: str, dek: bytes) -> AESGCM:
        """The key's cipher object, kept among the ones used last."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = self._ciphers[key_id] = AESGCM(dek)
            if len(self._ciphers) > CIPHERS_KEPT:
                self._ciphers.popitem(last=False)
        else:
            self._ciphers.move_to_end(key_id)
        return cipher

    def _known(self, key_id: str) -> AESGCM | None:
        with self._lock:
            if key_id in self._recent:
                self._recent.move_to_end(key_id)  # used: the last to be forgotten
            cipher = self._ciphers.get(key_id)
            if cipher is not None:
                self._ciphers.move_to_end(key_id)
                return cipher
            dek = self._keys.get(key_id)
            if dek is not None:
                self._keys.move_to_end(key_id)
            elif key_id in self._recent:
                dek = self._unwrap(key_id, self._recent[key_id])
                if dek is None:
                    del self._recent[key_id]
            elif not key_id.startswith(MESSAGE_KEYS) and key_id not in self._gone:
                wrapped = (
                    self._made.get(key_id) or self._lately.get(key_id) or self._cache.get(key_id)
                )
                dek = None if wrapped is None else self._unwrap(key_id, wrapped)
                if dek is not None:
                    self._keep(key_id, dek)
            return None if dek is None else self._cipher_of(key_id, dek)

    def _keep(self, key_id: str, dek: bytes) -> None:
        """Keep a patient or type key unwrapped, forgetting the least recently used."""
        self._keys[key_id] = dek
        self._keys.move_to_end(key_id)
        while len(self._keys) > self._keys_max:
            self._keys.popitem(last=False)

    def _read_back(self, wanted: set[str]) -> set[str]:
        """Read the message keys' topic again (then carelog.keys, where older ones are), from
        where this last stopped and round to there, until every per-message key in `wanted`
        is kept again; returns those found. Callers have just read the topics to their ends
        (catch_up). Shredded keys stay gone: the tombstone that shredded one was read
        already (or compaction took the key away)."""
        with self._lock:
            if self._back is None:
                self._back = self._reader("carelog-keys-back")
            missing = set(wanted)
            for topic in (self._messages_topic, self._topic):
                if missing and topic in self._positions:
                    missing -= self._scan_back(topic, missing)
            return set(wanted) - missing

    def _scan_back(self, topic: str, wanted: set[str]) -> set[str]:
        """`_read_back` on one topic: the keys of `wanted` found there."""
        assert self._back is not None
        # The end, as callers just read.
        end, start = self._positions[topic], self._back_positions.get(topic, 0)
        missing = set(wanted)
        # Past the last key wanted, read on as far again as half the keys kept: a replay or
        # a rebuild wants the keys that come next, and then finds them kept.
        ahead = self._recent_max // 2
        for low, high in ((start, end), (0, start)):
            if not missing or low >= high:
                continue
            self._back.assign([TopicPartition(topic, 0, low)])
            position = low
            while position < high and (missing or ahead > 0):
                # No more than what is left: consume() waits for as many as it asks.
                for msg in self._back.consume(max(1, min(500, high - position)), 0.2):
                    position = _position_after(msg, position)
                    if msg.error() is not None:
                        continue
                    key_id, wrapped = (msg.key() or b"").decode(), msg.value()
                    if wrapped is None or key_id in self._gone:
                        continue
                    if not missing:
                        ahead -= 1
                    if key_id.startswith(MESSAGE_KEYS) and key_id not in self._recent:
                        self._remember(key_id, wrapped)
                    missing.discard(key_id)
                    if not missing and ahead <= 0:
                        break
            self._back_positions[topic] = position
        return set(wanted) - missing

    def cipher(self, key_id: str) -> AESGCM | None:
        found = self._known(key_id)
        if found is None and key_id not in self._gone:
            if key_id.startswith(MESSAGE_KEYS):
                self._follow_messages()
            self._drain()  # made by another process after our last look: fetched by now
            found = self._known(key_id)
            if found is None:
                self.catch_up()  # not fetched yet, or never made: the end says which
                found = self._known(key_id)
            if found is None and key_id.startswith(MESSAGE_KEYS) and self._read_back({key_id}):
                found = self._known(key_id)  # an older message key, no longer kept
            if found is None:
                self._gone.add(key_id)
        return found

    def _live(self, prefix: str) -> tuple[str, AESGCM] | None:
        """The key to seal with under `prefix`, if there is one: in use here, else read
        lately, else in the cache file (asked only when the prefix filter says it may be
        there). A key another process made a moment ago (the worker, at a new patient's
        first message) is in memory once the store's thread took it (DRAIN_SECONDS); until
        then a caller seals with a key of its own, as good (erasure shreds every one)."""
        with self._lock:
            key_id = self._current.get(prefix)
            if key_id is None:
                lately = self._lately_under.get(prefix)
                if lately is not None:
                    found: tuple[str, bytes] | None = (lately, self._lately[lately])
                elif prefix in self._filter:
                    found = self._cache.first_under(prefix)
                else:
                    return None  # a new patient: nothing asked of the file
                if found is None:
                    return None
                key_id, wrapped = found
                dek = None if key_id in self._gone else self._unwrap(key_id, wrapped)
                if dek is None:
                    return None
                self._keep(key_id, dek)
                self._current[prefix] = key_id
                if len(self._current) > self._keys_max:
                    self._current.popitem(last=False)
            self._current.move_to_end(prefix)
            cipher = self._known(key_id)
            if cipher is None:  # not usable here (does not unwrap): make another
                del self._current[prefix]
                return None
            return key_id, cipher

    def key_for(self, prefix: str) -> tuple[str, AESGCM]:
        with self._lock:
            found = self._live(prefix)
            if found is not None:
                return found
            key_id = f"{prefix}/{random_id(6)}"
            if self.confirm_later:  # no round trip: made under the lock, one key a prefix
                cipher = self._create([key_id])[key_id]
                self._current[prefix] = key_id
                return key_id, cipher
        # Confirmed before it is used, outside the store lock (lookups go on meanwhile); a
        # second key made for the prefix meanwhile is as good (erasure shreds every one).
        cipher = self._create([key_id])[key_id]
        with self._lock:
            self._current[prefix] = key_id
        return key_id, cipher

    def current(self, prefix: str) -> tuple[str, AESGCM] | None:
        if self.confirm_later:
            return None  # a key made here may not be on the log yet: nothing to prove it is
        return self._live(prefix)

    def create_many(self, kind: str, count: int) -> list[tuple[str, AESGCM]]:
        ids = [f"{kind}:{random_id(16)}" for _ in range(count)]
        return list(self._create(ids).items())

    def _create(self, key_ids: list[str]) -> dict[str, AESGCM]:
        made: dict[str, tuple[bytes, bytes]] = {}
        confirm_now = not self.confirm_later
        # Confirmed before anything is sealed with them. The wait (up to 30 s while the
        # broker is away) is outside the store lock, so lookups of known keys go on; one
        # batch is sent and confirmed at a time, so a failure is never taken by another
        # batch's flush (a flush serves every pending record's delivery report).
        with self._confirming if confirm_now else nullcontext():
            with self._lock:
                for key_id in key_ids:
                    dek = new_key()
                    wrapped = seal(self._master, dek, key_id.encode())
                    made[key_id] = dek, wrapped
                    if confirm_now:
                        self._send(key_id, wrapped)
                    else:
                        self._unsent.append((key_id, wrapped))  # sent by confirm(), all at once
            if confirm_now:
                self._flush(len(made))
        with self._lock:
            for key_id, (dek, wrapped) in made.items():
                if key_id.startswith(MESSAGE_KEYS):
                    self._remember(key_id, wrapped)
                else:
                    self._made[key_id] = wrapped
                    self._keep(key_id, dek)
            return {key_id: AESGCM(dek) for key_id, (dek, _) in made.items()}

    def _send(self, key_id: str, wrapped: bytes | None) -> None:
        topic = self._messages_topic if key_id.startswith(MESSAGE_KEYS) else self._topic
        self._producer.produce(topic, wrapped, key_id, on_delivery=self._confirmed)
        if wrapped is None and topic != self._topic:
            # A shred goes on carelog.keys too: every process reads that whole, so it reaches
            # one that reads message keys from near their end only and would find the key
            # again by reading back (and a key made before they had a topic of its own).
            self._producer.produce(self._topic, None, key_id, on_delivery=self._confirmed)

    @property
    def message_keys_in_memory(self) -> int:
        return len(self._recent)

    @property
    def pending(self) -> bool:
        """Keys made and not confirmed yet, or a confirmation failed."""
        return bool(self._unsent or self._failures)

    def confirm(self) -> None:
        """Put every key made so far on the log and wait until it is there (raises
        DeliveryFailed if one is not): with `confirm_later`, called before committing events
        sealed with them."""
        with self._lock:
            unsent, self._unsent = self._unsent, []
            for key_id, wrapped in unsent:
                self._send(key_id, wrapped)
        if unsent or self._failures:
            # The wait, outside the lock: sealing with keys made meanwhile goes on.
            self._flush(len(unsent))

    def key_ids(self, prefix: str) -> list[str]:
        self.catch_up()
        with self._lock:
            # Made here and not read back yet, or read and not in the file yet (_lately
            # holds every key read that the file does not have yet).
            recent = (k for k in (*self._made, *self._lately) if _under(k, prefix))
            return sorted({*self._cache.under(prefix), *recent})

    def shred(self, key_ids: Iterable[str]) -> list[str]:
        asked = list(key_ids)
        if any(k.startswith(MESSAGE_KEYS) for k in asked):
            self._follow_messages()
        self.catch_up()
        older = {k for k in asked if k.startswith(MESSAGE_KEYS) and k not in self._recent}
        self._read_back(older - self._gone)  # message keys no longer kept: find them again
        with self._confirming, self._lock:
            found = [k for k in asked if k in self._keys or k in self._recent or k in self._made
                     or k in self._lately or self._cache.get(k) is not None]  # fmt: skip
            for key_id in found:
                self._send(key_id, None)
            self._flush(len(found))
            for key_id in found:
                self._forget(key_id)
            self._gone.update(found)
            self._shreds += len(found)
            return found

    def shredded(self, key_ids: Iterable[str]) -> set[str]:
        with self._lock:
            self._drain()  # shreds fetched since the last look count too (no round trip)
            return self._gone.intersection(key_ids)

    def shreds_seen(self) -> int:
        return self._shreds  # an int read: no lock (a shred taken just after counts next time)

    def _confirmed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")
            if msg.value() is not None:  # a key that is not on the log must seal nothing more
                with self._lock:  # run by whichever thread flushes, with or without the lock
                    self._forget((msg.key() or b"").decode())

    def _flush(self, count: int) -> None:
        left = self._producer.flush(30)
        if left and self.confirm_later:
            self._failures.append(f"{left} not confirmed within 30 s")
        if left or self._failures:
            failures = self._failures
            if not self.confirm_later:  # later: no commit may follow a key that is not there
                self._failures = []
            raise DeliveryFailed(
                f"{self._topic}: {left or count} key record(s) not confirmed: {'; '.join(failures)}"
            )

    @property
    def keys_in_memory(self) -> int:
        """Patient and type keys kept unwrapped (at most `keys_kept`)."""
        return len(self._keys)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop the refresh thread, close the readers and send what is unsent; once. Under
        the lock: a reader closed while another thread polls it is freed under that poll."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._save()
            try:
                self._write()  # a restart then reads on from here
            except sqlite3.Error as exc:  # the file is only a copy: a restart reads further back
                log.warning("key cache not written at close: %s", exc)
            with self._writing:
                self._cache_closed = True
                self._cache.close()
            for reader in (self._consumer, self._messages, self._ends, self._back):
                if reader is not None:
                    reader.close()
        self._producer.flush(30)
