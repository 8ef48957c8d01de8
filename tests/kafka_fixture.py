"""The real Kafka broker for the integration tier, started once per test session.

Order of preference: CARELOG_KAFKA_BOOTSTRAP (an existing cluster), testcontainers when a
Docker engine answers, else the project's own local broker on test ports under var/test/.
The suite never skips for want of a broker: it starts one.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from infra.kafka_broker import LocalBroker
from streams.settings import PROJECT_ROOT, Settings
from streams.settings.kafka import KafkaSettings

TEST_VAR = PROJECT_ROOT / "var" / "test"

# Set by `make test-unit` (and by conftest for `-m "not kafka"`): a unit run must not start a
# broker, so a test that needs one without carrying `pytest.mark.kafka` fails instead.
UNIT_RUN_ENV = "CARELOG_TEST_UNIT"


class BrokerInUnitRun(RuntimeError):
    """A test of a unit run (no broker) asked for the broker."""


def refuse_broker_in_unit_run(requester: str) -> None:
    if os.environ.get(UNIT_RUN_ENV) == "1":
        raise BrokerInUnitRun(
            f"{requester} needs the Kafka broker but runs in a unit run ({UNIT_RUN_ENV}=1, "
            "`make test-unit`): mark it `pytest.mark.kafka`"
        )


# Below Linux's ephemeral range (32768-60999). A port the kernel picks from that range (bind to
# 0) can be taken, between this check and the server's own bind, by any process's outgoing
# connection, a Kafka client's among them: ci of 87938ae lost a notifier to "Address already in
# use" that way. Outgoing connections never take a port from this range.
_TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and not handed out before in this session."""
    for _ in range(2000):
        port = random.choice(_TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_TEST_PORTS} after 2000 tries: is the host out of ports?")


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def test_broker() -> Iterator[str]:
    """Yield the bootstrap address of a running broker for this session."""
    refuse_broker_in_unit_run("the session broker")
    configured = os.environ.get("CARELOG_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    if docker_answers() and os.environ.get("CARELOG_TEST_DOCKER", "1") == "1":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with private_broker() as bootstrap:
        yield bootstrap


@contextmanager
def private_broker() -> Iterator[str]:
    """A local broker of its own on free ports (and a folder of its own), stopped after."""
    with stoppable_broker() as broker:
        yield broker.bootstrap


@contextmanager
def stoppable_broker() -> Iterator[LocalBroker]:
    """`private_broker`, for a test that stops and starts it again (`down()`, `up()`)."""
    refuse_broker_in_unit_run("a private broker")
    port = free_port()
    var_dir = TEST_VAR / f"broker-{port}"
    broker = LocalBroker(
        Settings(
            var_dir=var_dir,
            kafka=KafkaSettings(cluster=None, port=port, controller_port=free_port()),
        )
    )
    broker.up()
    try:
        yield broker
    finally:
        broker.down()
        shutil.rmtree(var_dir, ignore_errors=True)
