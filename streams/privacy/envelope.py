"""Sealing the PHI fields of an event record, and opening them: the one place for both.

`streams.event_codec.encode_event` seals and `decode_event` opens, so every writer and
reader goes through here. A sealed record carries `key_id` and `sealed` (AES-GCM of the PHI fields,
bound to the event id and key id) and has those fields null or empty. When its key was
shredded the record stays sealed: readers see `event.sealed is not None` (`is_erased`) and
treat the event as erased (skip it), never as bad input.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections.abc import Collection
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.privacy.aead import Unreadable, open_sealed, seal
from streams.privacy.keystore import KafkaKeyStore, KeyStore, MemoryKeyStore
from streams.privacy.message_keys import MessageKeys
from streams.settings import get_settings

log = logging.getLogger(__name__)

# The fields that may hold PHI, per record. Metadata (ids, times, lineage, hashes) stays clear
# so the log can be routed, replayed and audited without keys.
PHI_FIELDS: dict[str, tuple[str, ...]] = {
    "InboundMessage": ("payload",),
    "ResourceTranslated": ("resource", "warnings"),
    "ResourceChanged": ("resource", "warnings"),
    "Rejected": ("original", "operation_outcome", "reason", "original_key"),
}
# What a sealed non-null field holds in clear.
_EMPTY: dict[str, Any] = {"original": b"", "operation_outcome": "", "reason": ""}
_NONE, _BYTES, _STR = 0, 1, 2

# A batch's keys, looked up once each (`open_record`): key id -> its cipher, None if gone.
KeyMemo = dict[str, AESGCM | None]

_store: KeyStore | None = None
_store_lock = threading.Lock()
_store_off = False
_made_here: KeyStore | None = None  # the store _made_once made from the settings, if current
_confirm_later = False


def install(store: KeyStore | None) -> None:
    """Use `store` from now on (None: choose again from the settings at next use). A store
    made here from the settings is closed when replaced: nothing else holds it, and left
    open its readers and refresh thread would run to the process's end."""
    global _store, _store_off, _made_here
    with _store_lock:
        replaced = _made_here if _made_here is not store else None
        _store, _store_off, _made_here = store, False, None
        _message_keys.clear()
    if isinstance(replaced, KafkaKeyStore):
        replaced.close()


def close() -> None:
    """Close the process's key store (its consumers, producer and refresh thread) and forget
    it: for a process that goes on after its broker is gone (a test session's end)."""
    store = _store
    install(None)
    if isinstance(store, KafkaKeyStore):
        store.close()  # a no-op when install closed it already


def keystore() -> KeyStore | None:
    """The process's key store, made from the settings on first use; None when key_store=off."""
    if _store is not None or _store_off:
        return _store
    with _store_lock:
        return _made_once()


def _made_once() -> KeyStore | None:
    """`keystore` under its lock. A function of its own: another thread may have made the
    store since `keystore` looked, and the type checker (which compiles this module, see
    infra/native_build.py) would take `_store` for None there."""
    global _store, _store_off, _made_here
    if _store is None and not _store_off:
        settings = get_settings()
        if settings.privacy.key_store == "off":
            _store_off = True
        elif settings.privacy.key_store == "memory":
            _store = MemoryKeyStore()
        else:
            _store = KafkaKeyStore(
                settings,
                settings.privacy.key_refresh_seconds,
                confirm_later=_confirm_later,
                message_keys_kept=settings.privacy.message_keys_kept,
                cache_dir=settings.key_cache_root,
                keys_kept=settings.privacy.keys_kept,
            )
            _made_here = _store
    return _store


def open_in_background() -> None:
    """Make the key store now, on a thread, rather than in the first message's seal: it reads
    carelog.keys to its end when made (up to seconds on a first start), and a server's first
    request would wait for that on its event loop. A request that comes first waits for it
    (the store lock); a failure (the broker away) leaves it to be made at the next use."""

    def open_store() -> None:
        try:
            keystore()
        except Exception as exc:
            log.warning("key store not opened at start (%s): opened at first use", exc)

    threading.Thread(target=open_store, name="carelog-keys-open", daemon=True).start()


def confirm_new_keys_before_commit() -> None:
    """For a process whose writes are read only once its Kafka transaction commits (the
    worker): new keys are sent at once and confirmed by `confirm_new_keys`, which it must
    call before each commit. No round trip to the broker per new patient."""
    global _confirm_later
    _confirm_later = True
    if isinstance(_store, KafkaKeyStore):
        _store.confirm_later = True


def keys_to_confirm() -> bool:
    """Whether keys were made since the last `confirm_new_keys` (or a confirmation failed)."""
    return isinstance(_store, KafkaKeyStore) and _store.pending


def confirm_new_keys() -> None:
    """Wait until the keys sent so far are on the log (raises DeliveryFailed if one is not):
    then the events sealed with them may commit."""
    if isinstance(_store, KafkaKeyStore):
        _store.confirm()


_message_keys = MessageKeys()


# A reference to a Patient in a resource's canonical JSON (relative, absolute or versioned).
_PATIENT_REFERENCE = re.compile(
    r'"reference"\s*:\s*"(?:[^"]*/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"'
)


def owner_of(resource_type: str, resource_id: str, resource_json: str) -> str | None:
    """The patient whose key seals a resource: a Patient is its own; any other resource is
    the patient it refers to (the smallest id when several). A scan of the JSON text, no
    parse: this runs for every resource the worker writes, twice."""
    if resource_type == "Patient":
        return resource_id
    found = _PATIENT_REFERENCE.findall(resource_json)
    return min(found) if found else None


def patients_in(resource_type: str, resource_id: str, resource_json: str) -> set[str]:
    """Every patient a resource belongs to by the same scan: a Patient itself, and each patient
    it refers to (`owner_of` picks one of these to seal with)."""
    found = set(_PATIENT_REFERENCE.findall(resource_json))
    if resource_type == "Patient":
        found.add(resource_id)
    return found


def _key_prefix(name: str, record: dict[str, Any]) -> str | None:
    """`patient:<id>` when the record's resource belongs to a patient (see `owner_of`), else
    `resource:<type>`: one key for every resource of that type that refers to no patient
    (an Organization, a Practitioner). Erasing a patient never reached those (no patient's
    key sealed them), and a fresh per-message key each time cost a key record per event."""
    if name not in ("ResourceTranslated", "ResourceChanged") or not record.get("resource"):
        return None
    owner = owner_of(record["resource_type"], record["resource_id"], record["resource"])
    return f"patient:{owner}" if owner else f"resource:{record['resource_type']}"


def _pack(values: list[Any]) -> bytes:
    out = bytearray()
    for value in values:
        if value is None:
            out += struct.pack(">BI", _NONE, 0)
        elif isinstance(value, bytes):
            out += struct.pack(">BI", _BYTES, len(value)) + value
        else:
            data = value.encode()
            out += struct.pack(">BI", _STR, len(data)) + data
    return bytes(out)


def _unpack(data: bytes) -> list[Any]:
    values: list[Any] = []
    at = 0
    while at < len(data):
        kind, size = struct.unpack_from(">BI", data, at)
        at += 5
        raw = data[at : at + size]
        at += size
        values.append(None if kind == _NONE else raw if kind == _BYTES else raw.decode())
    return values


def _aad(record: dict[str, Any], key_id: str) -> bytes:
    return f"{record['event_id']}|{key_id}".encode()


def sole_patient(resource_type: str, resource_id: str | None, resource_json: str) -> str | None:
    """The patient a resource (or a message's text) is about when it is about one only: what
    the edge seals an inbound FHIR write with (`seal_record`'s owner)."""
    if resource_type == "Patient" and not resource_id:
        return None  # created: its id is not known yet
    found = patients_in(resource_type, resource_id or "", resource_json)
    return found.pop() if len(found) == 1 else None


def seal_record(name: str, record: dict[str, Any], owner: str | None = None) -> None:
    """Seal the PHI fields of `record` in place (no-op with encryption off or nothing to seal).

    `owner`: the patient an InboundMessage is about, when the edge knows it is one only. It
    is sealed with that patient's key if the patient has one on the log already (a returning
    patient costs no key record, and erasing the patient finds it by the key alone); else,
    and for a new patient, with a per-message key (the edge never waits for a new key)."""
    if record.get("sealed") is not None:
        return  # erased, or sealed already: written on unchanged
    fields = PHI_FIELDS[name]
    values = [record.get(f) for f in fields]
    if all(v is None or v in (b"", "") for v in values):
        record["key_id"] = None
        return
    store = keystore()
    if store is None:
        record["key_id"] = None
        return
    prefix = _key_prefix(name, record)
    if prefix:
        key_id, cipher = store.key_for(prefix)
    else:
        known = store.current(f"patient:{owner}") if owner else None
        key_id, cipher = known or _message_keys.take(store)
    record["sealed"] = seal(cipher, _pack(values), _aad(record, key_id))
    record["key_id"] = key_id
    for f in fields:
        record[f] = _EMPTY.get(f)


def seal_change(
    event_id: str, resource_type: str, resource_id: str, resource: str
) -> tuple[str, bytes] | None:
    """What `seal_record` makes of a ResourceChanged that holds `resource` and no warnings:
    (key_id, sealed), for a writer that lays the record out itself (api/fhir/audit_record.py);
    None with encryption off (the record stays in clear)."""
    store = keystore()
    if store is None:
        return None
    record = {"event_id": event_id, "resource_type": resource_type,
              "resource_id": resource_id, "resource": resource}  # fmt: skip
    prefix = _key_prefix("ResourceChanged", record)
    assert prefix is not None, "a change with a resource is sealed with its owner's key"
    key_id, cipher = store.key_for(prefix)
    return key_id, seal(cipher, _pack([resource, None]), _aad(record, key_id))


def open_record(name: str, record: dict[str, Any], ciphers: KeyMemo | None = None) -> str | None:
    """Open a sealed `record` in place; one whose key is gone stays sealed (erased).
    Returns the id of the key it opened with (None: in clear, or not opened): a reader that
    writes what it read checks `shredded` of it first (an erasure may have come between).

    `ciphers`: a batch's keys, looked up once each (a patient's changes come together). Only
    for a reader that checks `shredded` after the batch: a shred that arrives while the
    batch is opened is seen there, not here."""
    sealed = record.get("sealed")
    if sealed is None:
        return None
    key_id = record["key_id"]
    if ciphers is not None and key_id in ciphers:
        cipher = ciphers[key_id]
    else:
        store = keystore()
        cipher = store.cipher(key_id) if store is not None and key_id else None
        if ciphers is not None:
            ciphers[key_id] = cipher
    if cipher is None:
        return None
    try:
        values = _unpack(open_sealed(cipher, sealed, _aad(record, key_id)))
    except Unreadable:
        return None
    for f, v in zip(PHI_FIELDS[name], values, strict=True):
        record[f] = v
    # Opened, the event is as it was before sealing; writing it again seals it afresh.
    record["sealed"] = record["key_id"] = None
    return str(key_id)


def shreds_seen() -> int:
    """See `KeyStore.shreds_seen` (0 with encryption off)."""
    store = keystore()
    return store.shreds_seen() if store is not None else 0


def key_shredded(key_id: str) -> bool:
    """Whether this key, which sealed an event, is gone (shredded by `carelog erase`, before
    this process started or since). A key still there costs a lookup in memory."""
    store = keystore()
    return store is not None and store.cipher(key_id) is None


def shredded(key_ids: Collection[str]) -> set[str]:
    """Those of `key_ids` (keys that opened events, `open_record`) shredded since: what they
    opened must not be written (carelog erase deletes it once every process has seen the
    shred, and a batch opened before must not bring it back)."""
    store = keystore()
    return store.shredded(key_ids) if store is not None and key_ids else set()
