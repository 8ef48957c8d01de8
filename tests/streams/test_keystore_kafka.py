"""Data keys on carelog.keys shared between processes (two KafkaKeyStores on the real broker)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.admin import apply_catalogue
from streams.kafka_config import producer_config
from streams.privacy import envelope, keystore
from streams.privacy.aead import new_key, seal
from streams.privacy.key_cache import prefix_of
from streams.privacy.keystore import KafkaKeyStore
from streams.privacy.master import master_key
from streams.settings import Settings
from streams.topics import KEYS, MESSAGE_KEYS_SUFFIX, catalogue

pytestmark = pytest.mark.kafka


@pytest.fixture
def keys_topic(kafka_settings: Settings) -> str:
    """A key topic of this test's own, configured as carelog.keys: reading it again is
    reading this test's keys, not every key the session made."""
    keys = next(t for t in catalogue(kafka_settings.environment) if t.name == KEYS)
    name = f"test.keys.{uuid.uuid4().hex[:12]}"
    apply_catalogue([replace(keys, name=n) for n in (name, name + MESSAGE_KEYS_SUFFIX)],
                    kafka_settings)  # fmt: skip
    return name


def test_a_patient_key_made_elsewhere_is_used_not_made_again(kafka_settings: Settings) -> None:
    """The worker makes a new patient's key; the gateway, auditing a read of that patient a
    moment later, seals with the same key instead of making (and logging) a second one."""
    worker, gateway = KafkaKeyStore(kafka_settings), KafkaKeyStore(kafka_settings)
    try:
        prefix = f"patient:{uuid.uuid4().hex}"
        made, cipher = worker.key_for(prefix)  # confirmed on the log when it returns
        time.sleep(1.0)  # the gateway's reader fetches it in the background
        used, same = gateway.key_for(prefix)
        assert used == made
        sealed = cipher.encrypt(b"\0" * 12, b"phi", b"aad")
        assert same.decrypt(b"\0" * 12, sealed, b"aad") == b"phi"
        assert gateway.key_ids(prefix) == [made]  # no second key on the log
    finally:
        worker.close()
        gateway.close()


def test_the_edge_seals_with_a_patient_key_on_the_log_and_never_makes_one(
    kafka_settings: Settings, keys_topic: str
) -> None:
    """`current` (the edge sealing a returning patient's message) finds the key the worker
    made once it is on the log, makes none for a new patient, and a process that confirms
    keys only at its commit (the worker) never offers one it cannot prove is on the log."""
    worker = KafkaKeyStore(kafka_settings, topic=keys_topic, confirm_later=True)
    edge = KafkaKeyStore(kafka_settings, topic=keys_topic)
    try:
        prefix = f"patient:{uuid.uuid4().hex}"
        assert edge.current(prefix) is None  # a new patient: no key made for it
        made, _ = worker.key_for(prefix)
        assert worker.current(prefix) is None  # made, not confirmed yet
        worker.confirm()
        deadline = time.monotonic() + 10
        while (found := edge.current(prefix)) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the edge's reader fetches it in the background
        assert found is not None and found[0] == made
        assert edge.key_ids(prefix) == [made]  # the edge made none of its own
    finally:
        worker.close()
        edge.close()


def test_a_key_the_reader_has_not_fetched_yet_is_found_by_reading_to_the_end(
    kafka_settings: Settings,
) -> None:
    maker, reader = KafkaKeyStore(kafka_settings), KafkaKeyStore(kafka_settings)
    try:
        made, _ = maker.key_for(f"patient:{uuid.uuid4().hex}")
        assert reader.cipher(made) is not None  # at once: no wait for the background fetch
        assert reader.cipher(f"patient:{uuid.uuid4().hex}/never-made") is None
    finally:
        maker.close()
        reader.close()


def _sealed_with(cipher: AESGCM) -> bytes:
    return cipher.encrypt(b"\0" * 12, b"an HL7 message", b"aad")


def test_older_message_keys_are_not_all_kept_and_are_read_again_when_needed(
    kafka_settings: Settings, keys_topic: str
) -> None:
    """Per-message keys have a topic of their own: a process reads it only once it opens an
    event sealed with one, from the most recent keys it keeps; a replay or a rebuild that
    needs an older one reads it again."""
    edge = KafkaKeyStore(kafka_settings, topic=keys_topic)
    made = edge.create_many("msg", 40)  # confirmed on the log when it returns
    patient, _ = edge.key_for(f"patient:{uuid.uuid4().hex}")
    reader = KafkaKeyStore(kafka_settings, message_keys_kept=5, topic=keys_topic)
    try:
        assert reader.cipher(patient) is not None
        assert reader.message_keys_in_memory == 0  # no message key needed: none fetched
        assert reader.cipher(made[-1][0]) is not None
        assert reader.message_keys_in_memory == 5  # read from 5 before the end
        for key_id, cipher in made[:3] + made[10:12]:  # the oldest first, then further on
            opened = reader.cipher(key_id)
            assert opened is not None, key_id
            assert opened.decrypt(b"\0" * 12, _sealed_with(cipher), b"aad") == b"an HL7 message"
            assert reader.message_keys_in_memory <= 5
        assert reader.cipher(f"msg:{uuid.uuid4().hex}") is None  # never made
    finally:
        edge.close()
        reader.close()


def _written(settings: Settings, topic: str, key_ids: list[str]) -> dict[str, bytes]:
    """Key records written straight to `topic`, as another process (or an older carelog)
    would have: each id's key."""
    wrap = AESGCM(master_key(settings))
    made = {key_id: new_key() for key_id in key_ids}
    producer = Producer(producer_config(settings))
    for key_id, dek in made.items():
        producer.produce(topic, seal(wrap, dek, key_id.encode()), key_id)
    assert producer.flush(30) == 0
    return made


def test_message_keys_made_before_they_had_a_topic_of_their_own_are_still_found(
    kafka_settings: Settings, keys_topic: str
) -> None:
    """Message keys on carelog.keys (written before carelog.keys.messages existed) are read
    at start-up, and read again from there once no longer kept."""
    old = _written(kafka_settings, keys_topic, [f"msg:{uuid.uuid4().hex}" for _ in range(6)])
    reader = KafkaKeyStore(kafka_settings, message_keys_kept=2, topic=keys_topic)
    try:
        for key_id, dek in old.items():  # the first four no longer kept: read back
            found = reader.cipher(key_id)
            assert found is not None, key_id
            assert (
                found.decrypt(b"\0" * 12, AESGCM(dek).encrypt(b"\0" * 12, b"x", b""), b"") == b"x"
            )
    finally:
        reader.close()


def test_a_message_key_no_longer_kept_is_shredded_for_every_reader(
    kafka_settings: Settings, keys_topic: str
) -> None:
    edge = KafkaKeyStore(kafka_settings, topic=keys_topic)
    (old_id, _), (kept_id, _) = edge.create_many("msg", 2)
    edge.create_many("msg", 10)  # newer keys push both out of a small memory
    eraser = KafkaKeyStore(kafka_settings, message_keys_kept=3, topic=keys_topic)
    try:
        assert eraser.shred([old_id]) == [old_id]
        assert eraser.cipher(old_id) is None
        edge.create_many("msg", 10)  # the shred is no longer among the last keys either
        later = KafkaKeyStore(kafka_settings, message_keys_kept=3, topic=keys_topic)
        try:
            assert later.cipher(old_id) is None  # read again from the log: shredded there
            assert later.cipher(kept_id) is not None
        finally:
            later.close()
    finally:
        edge.close()
        eraser.close()


def test_a_restart_reads_only_the_key_records_that_came_since(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """Patient keys are copied (wrapped) into a local cache with the position read to: a
    process that starts again reads only what came meanwhile, shreds included, and keeps
    only the keys it uses unwrapped in memory."""
    maker = KafkaKeyStore(kafka_settings, topic=keys_topic)
    made: dict[str, tuple[str, AESGCM]] = {}
    for _ in range(30):
        prefix = f"patient:{uuid.uuid4().hex}"
        made[prefix] = maker.key_for(prefix)
    first = KafkaKeyStore(kafka_settings, topic=keys_topic, cache_dir=tmp_path, keys_kept=4)
    assert first.records_read == 30
    first.close()

    prefixes = list(made)
    erased = prefixes[0]
    maker.shred(maker.key_ids(erased))  # while it is down
    later = f"patient:{uuid.uuid4().hex}"
    made[later] = maker.key_for(later)
    again = KafkaKeyStore(kafka_settings, topic=keys_topic, cache_dir=tmp_path, keys_kept=4)
    try:
        assert again.records_read == 2  # the shred and the new key, not the 30 before
        assert again.key_ids(erased) == [] and again.cipher(made[erased][0]) is None
        for prefix in [*prefixes[1:], later]:
            key_id, cipher = made[prefix]
            assert again.key_ids(prefix) == [key_id]
            opened = again.cipher(key_id)
            assert opened is not None, key_id
            assert opened.decrypt(b"\0" * 12, _sealed_with(cipher), b"aad") == b"an HL7 message"
            assert again.current(prefix) == (key_id, opened)  # the edge finds it to seal with
            assert again.keys_in_memory <= 4
    finally:
        again.close()
        maker.close()


def test_a_new_patient_is_answered_from_memory_and_a_known_one_from_the_file(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """The edge and the worker ask at each new patient's first message whether it has a key:
    the prefix filter answers no without the cache file (a file lookup lets go of the
    interpreter lock). Known patients, more than the filter held at first, are all found."""
    made = _written(
        kafka_settings, keys_topic, [f"patient:{uuid.uuid4().hex}/k" for _ in range(3000)]
    )
    store = KafkaKeyStore(kafka_settings, topic=keys_topic, cache_dir=tmp_path)
    try:
        asked: list[str] = []
        first_under = store._cache.first_under
        store._cache.first_under = lambda prefix: asked.append(prefix) or first_under(prefix)  # type: ignore[method-assign]
        new = [f"patient:{uuid.uuid4().hex}" for _ in range(1000)]
        assert all(store.current(prefix) is None for prefix in new)
        assert len(asked) < 50  # false "maybe"s: about 1%
        assert store._filter.capacity > len(made)  # made again, bigger, as keys came
        store._lately.clear()  # as after 8,192 more keys: found through the filter and file
        store._lately_under.clear()
        for key_id, dek in made.items():
            found = store.current(key_id.rpartition("/")[0])
            assert found is not None and found[0] == key_id
            assert (
                found[1].decrypt(b"\0" * 12, AESGCM(dek).encrypt(b"\0" * 12, b"x", b""), b"")
                == b"x"
            )
    finally:
        store.close()


def _in_file(copy: Path) -> tuple[int, int]:
    """(keys, position) as the cache file holds them, read past the process's connection."""
    db = sqlite3.connect(copy)
    try:
        keys = db.execute("SELECT count(*) FROM keys").fetchone()[0]
        return keys, db.execute("SELECT position FROM read_to").fetchone()[0]
    finally:
        db.close()


def test_keys_just_read_are_found_in_memory_and_written_to_the_file_in_batches(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """Every process keeps every patient key: the file is written a batch at a time (a random
    insert alone costs half again as much), the keys read meanwhile are looked up in memory,
    the position written is always that of what the file holds (a crash loses nothing), and
    a shred is written at once."""
    maker = KafkaKeyStore(kafka_settings, topic=keys_topic)
    reader = KafkaKeyStore(kafka_settings, 60.0, topic=keys_topic, cache_dir=tmp_path)
    try:
        [copy] = tmp_path.glob("*.sqlite")
        made = [maker.key_for(f"patient:{uuid.uuid4().hex}") for _ in range(5)]
        for key_id, cipher in made:
            prefix = key_id.rpartition("/")[0]
            deadline = time.monotonic() + 10
            while (found := reader.current(prefix)) is None and time.monotonic() < deadline:
                time.sleep(0.05)  # fetched in the background, taken by the next lookup
            assert found is not None and found[0] == key_id
            assert found[1].decrypt(b"\0" * 12, _sealed_with(cipher), b"aad") == b"an HL7 message"
        assert _in_file(copy) == (0, 0)  # not written yet, and no position past what it holds

        assert maker.shred([made[0][0]]) == [made[0][0]]
        deadline = time.monotonic() + 10
        while made[0][0] not in reader.shredded([made[0][0]]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.cipher(made[0][0]) is None
        assert _in_file(copy) == (4, 6)  # the shred written at once, with what came before it
        later = maker.key_for(f"patient:{uuid.uuid4().hex}")[0]
        deadline = time.monotonic() + 10
        while reader.current(later.rpartition("/")[0]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_file(copy) == (4, 6)
        reader.close()  # a restart reads on from the end, not from the shred
        assert _in_file(copy) == (5, 7)
    finally:
        reader.close()
        maker.close()


def test_every_key_the_file_does_not_have_yet_stays_in_memory(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys read wait in memory for the file's next batch. However many wait (more than the
    keys read last that memory keeps otherwise), each is found, and erasure finds each by its
    patient: a key neither in memory nor in the file would be taken for one never made."""
    monkeypatch.setattr(keystore, "LATELY_KEPT", 4)
    reader = KafkaKeyStore(kafka_settings, 60.0, topic=keys_topic, cache_dir=tmp_path)
    try:
        made = _written(
            kafka_settings, keys_topic, [f"patient:{uuid.uuid4().hex}/k" for _ in range(20)]
        )
        deadline = time.monotonic() + 10
        while reader.records_read < len(made) and time.monotonic() < deadline:
            time.sleep(0.05)  # taken by the store's thread
        [copy] = tmp_path.glob("*.sqlite")
        assert _in_file(copy) == (0, 0)  # none written yet
        for key_id in made:
            assert reader.cipher(key_id) is not None, key_id
            assert reader.key_ids(prefix_of(key_id)) == [key_id]
    finally:
        reader.close()
    assert _in_file(copy) == (20, 20)  # written at close


def test_lookups_go_on_while_the_cache_file_is_written(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """The store's thread writes the key cache file outside the store lock (a batch of 16,384
    random inserts takes a tenth of a second or more): a lookup of a key in memory answers
    while a write is under way (here a shred's, written at once), and the write lands once it
    is let through."""
    maker = KafkaKeyStore(kafka_settings, topic=keys_topic)
    reader = KafkaKeyStore(kafka_settings, 60.0, topic=keys_topic, cache_dir=tmp_path)
    writing, let_through = threading.Event(), threading.Event()
    write = reader._cache.write

    def held_write(records: list[tuple[str, bytes | None]], position: int) -> None:
        writing.set()
        let_through.wait(10)
        write(records, position)

    try:
        kept, _ = maker.key_for(f"patient:{uuid.uuid4().hex}")
        shredded, _ = maker.key_for(f"patient:{uuid.uuid4().hex}")
        deadline = time.monotonic() + 10
        while reader.current(prefix_of(kept)) is None and time.monotonic() < deadline:
            time.sleep(0.05)  # fetched and taken in the background
        reader._cache.write = held_write  # type: ignore[method-assign]
        assert maker.shred([shredded]) == [shredded]
        assert writing.wait(10), "the reader's thread took the shred and writes it"
        started = time.monotonic()
        found = reader.current(prefix_of(kept))
        assert time.monotonic() - started < 1.0  # not behind the write (held up to 10 s)
        assert found is not None and found[0] == kept
        let_through.set()
        assert reader.shredded([shredded]) == {shredded}  # waits for the write, then answers
        assert reader._cache.get(kept) is not None and reader._cache.get(shredded) is None
    finally:
        let_through.set()
        reader.close()
        maker.close()


def test_a_cache_of_another_topic_is_not_trusted(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """A key topic made again under the same name (a new cluster, a reset) has another topic
    id: a copy of the old one is thrown away and the new topic read from its start."""
    maker = KafkaKeyStore(kafka_settings, topic=keys_topic)
    key_id, _ = maker.key_for(f"patient:{uuid.uuid4().hex}")
    first = KafkaKeyStore(kafka_settings, topic=keys_topic, cache_dir=tmp_path)
    first.close()
    [copy] = tmp_path.glob("*.sqlite")
    db = sqlite3.connect(copy)
    db.execute("UPDATE read_to SET topic_id = 'another-topic'")
    db.commit()
    db.close()
    again = KafkaKeyStore(kafka_settings, topic=keys_topic, cache_dir=tmp_path)
    try:
        assert again.records_read == 1 and again.cipher(key_id) is not None
    finally:
        again.close()
        maker.close()


def test_a_shred_leaves_an_idle_processs_memory_and_cache_file(
    kafka_settings: Settings, keys_topic: str, tmp_path: Path
) -> None:
    """A process that looks up no key meanwhile (an idle listener) still drops a shredded key
    from memory and from its key cache file within refresh_seconds: erasure waits that long."""
    maker = KafkaKeyStore(kafka_settings, topic=keys_topic)
    prefix = f"patient:{uuid.uuid4().hex}"
    key_id, _ = maker.key_for(prefix)
    idle = KafkaKeyStore(kafka_settings, 0.3, topic=keys_topic, cache_dir=tmp_path)
    try:
        assert idle._cache.get(key_id) is not None
        assert idle._known(key_id) is not None  # in memory, unwrapped
        assert maker.shred([key_id]) == [key_id]
        time.sleep(2 * 0.3 + 0.5)  # erasure's wait (2 x refresh), and the broker's fetch wait
        assert idle._cache.get(key_id) is None and key_id not in idle._keys
        # Read straight from the file (as a copy of the disk would be), past any cache.
        [copy] = tmp_path.glob("*.sqlite")
        db = sqlite3.connect(copy)
        assert db.execute("SELECT count(*) FROM keys WHERE key_id = ?", (key_id,)).fetchone() == (
            0,
        )
        db.close()
    finally:
        idle.close()
        maker.close()


def test_a_store_made_from_the_settings_is_closed_when_replaced(kafka_settings: Settings) -> None:
    """`envelope.install` closes the store the process made from its settings (nothing else
    holds it: left open, its readers and refresh thread would poll to the process's end,
    a broker that has stopped included); a store installed by its owner stays the owner's."""
    envelope.install(None)
    made = envelope.keystore()
    assert isinstance(made, KafkaKeyStore) and not made.closed
    owned = KafkaKeyStore(kafka_settings)
    try:
        envelope.install(owned)
        assert made.closed
        envelope.install(None)
        assert not owned.closed
        made.close()  # again: a no-op
    finally:
        owned.close()
        envelope.install(None)
