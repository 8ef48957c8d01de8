"""A worker assigned while the broker had not loaded its topics rejoins once they are back.

The assignor is Faust's own, run on a stand-in of aiokafka's cluster metadata (it only asks
`partitions_for_topic`); the fault test with a real broker restart is
tests/system/test_broker_restart.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import faust
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from processors.rejoin_when_topics_return import RememberingAssignor, _rejoin_if_back


@dataclass
class Cluster:
    partitions: dict[str, set[int]]

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


@dataclass
class Client:
    cluster: Cluster
    refreshes: int = 0

    async def force_metadata_update(self) -> bool:
        self.refreshes += 1
        return True


@dataclass
class Coordinator:
    rejoins: int = 0

    def request_rejoin(self) -> None:
        self.rejoins += 1


@dataclass
class Consumer:
    _client: Client
    _coordinator: Coordinator = field(default_factory=Coordinator)


def _assignor() -> RememberingAssignor:
    app = faust.App("test-rejoin", PartitionAssignor=RememberingAssignor)
    assignor = app.assignor
    assert isinstance(assignor, RememberingAssignor)
    return assignor


def _assign(assignor: RememberingAssignor, cluster: Cluster, topics: list[str]) -> set[str]:
    """Assign `topics` to one member; the topics it was given."""
    user_data = ClientMetadata(
        assignment=ClientAssignment(actives={}, standbys={}), url="http://w1",
        changelog_distribution={},
    ).dumps()  # fmt: skip
    member = ConsumerProtocolMemberMetadata(0, topics, user_data)
    assignment = assignor.assign(cluster, {"w1": member})["w1"]
    return {topic for topic, _ in assignment.assignment}


def test_the_assignor_remembers_topics_it_found_no_partitions_for() -> None:
    assignor = _assignor()
    restarted = Cluster({"carelog.inbound.hl7v2": {0, 1}})
    given = _assign(assignor, restarted, ["carelog.inbound.hl7v2", "carelog.fhir.translated"])
    assert given == {"carelog.inbound.hl7v2"}
    assert assignor.left_out == {"carelog.fhir.translated"}

    loaded = Cluster({"carelog.inbound.hl7v2": {0, 1}, "carelog.fhir.translated": {0, 1}})
    given = _assign(assignor, loaded, ["carelog.inbound.hl7v2", "carelog.fhir.translated"])
    assert given == {"carelog.inbound.hl7v2", "carelog.fhir.translated"}
    assert assignor.left_out == frozenset()


def test_a_worker_rejoins_once_a_left_out_topic_has_partitions_and_not_before() -> None:
    assignor = _assignor()
    cluster = Cluster({})
    _assign(assignor, cluster, ["carelog.inbound.hl7v2"])
    consumer = Consumer(Client(cluster))

    asyncio.run(_rejoin_if_back(consumer, assignor))  # the broker has not loaded it yet
    assert consumer._client.refreshes == 1 and consumer._coordinator.rejoins == 0
    assert assignor.left_out == {"carelog.inbound.hl7v2"}

    cluster.partitions["carelog.inbound.hl7v2"] = {0, 1, 2}
    asyncio.run(_rejoin_if_back(consumer, assignor))
    assert consumer._coordinator.rejoins == 1
    assert assignor.left_out == frozenset()  # one rejoin: the next assignment says anew
