"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) on the JVM, no Docker.

The jars are resolved from Maven Central by `mvn dependency:copy-dependencies` on
infra/kafka/pom.xml and cached under ~/.cache/carelog (outside the repository). Storage,
config, logs and the pid file live under <var>/kafka/.

Kafka 3.9.1: Kafka 4 removed old protocol versions (KIP-896) and the aiokafka under
faust-streaming still tracks 4.x support as an open question (aio-libs/aiokafka#1085), while
3.9 speaks every version both aiokafka and librdkafka use and runs KRaft in production.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.settings import Settings

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J = Path(__file__).parent / "kafka" / "log4j.properties"


class BrokerError(RuntimeError):
    """The local broker could not be set up, started or stopped."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    log_file: Path


class LocalBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.var_dir / "kafka"
        self.data_dir = self.home / "data"
        self.config_file = self.home / "server.properties"
        self.log_file = self.home / "broker.log"
        self.pid_file = self.home / "broker.pid"
        self.libs = settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
        self.bootstrap = f"127.0.0.1:{settings.kafka.port}"

    # -- jars ---------------------------------------------------------------------------------

    def resolve_jars(self) -> Path:
        """Copy kafka_2.13 and its runtime dependencies into the cache (once)."""
        done = self.libs / ".complete"
        if done.exists():
            return self.libs
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}",
            f"-Dkafka.version={KAFKA_VERSION}",
        ]  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise BrokerError(
                "mvn is not on PATH: install Maven (and a JDK 17+) or set CARELOG_KAFKA_BOOTSTRAP "
                "to use an existing cluster"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise BrokerError(
                f"mvn could not resolve Kafka {KAFKA_VERSION}:\n{exc.stdout}{exc.stderr}"
            ) from exc
        done.write_text(KAFKA_VERSION)
        return self.libs

    # -- storage ------------------------------------------------------------------------------

    def _write_config(self) -> None:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{s.kafka.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{s.kafka.port},"
                    f"CONTROLLER://127.0.0.1:{s.kafka.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=6",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=6",
                    "group.initial.rebalance.delay.ms=0",
                    f"message.max.bytes={s.kafka.message_max_bytes + 64 * 1024}",
                    f"num.network.threads={s.kafka.network_threads}",
                    f"num.io.threads={s.kafka.io_threads}",
                    "",
                ]
            )
        )

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self._java(
            ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file)],
            capture=True,
        )

    def _java(self, args: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = ["java", "-cp", f"{self.libs}/*", f"-Dlog4j.configuration=file:{LOG4J}", *args]
        try:
            return subprocess.run(cmd, check=True, capture_output=capture, text=True)
        except FileNotFoundError:
            raise BrokerError("java is not on PATH: install a JDK 17+") from None
        except subprocess.CalledProcessError as exc:
            raise BrokerError(f"{' '.join(args[:2])} failed:\n{exc.stdout}{exc.stderr}") from exc

    # -- lifecycle ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def answers(self, timeout: float = 2.0) -> bool:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            admin.list_topics(timeout=timeout)
            return True
        except Exception:
            return False

    def up(self, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker unless it runs already; return once it answers."""
        if self.pid() is not None and self.answers():
            return self.status()
        argv = self._prepare()
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the `carelog kafka up` that started it
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; see {self.log_file}"
                )
            if self.answers(timeout=1.0):
                return self.status()
            time.sleep(0.2)
        self.down()
        raise BrokerError(
            f"the broker did not answer on {self.bootstrap} within {timeout:.0f}s; see {self.log_file}"
        )

    def _prepare(self) -> list[str]:
        """Jars, config and formatted storage in place; the argv that runs the broker."""
        self.resolve_jars()
        self._write_config()
        self._format_storage()
        heap = self.settings.kafka.heap
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *self.settings.kafka.jvm_options.split(),
            f"-Dlog4j.configuration=file:{LOG4J}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.config_file),
        ]

    def run_foreground(self) -> None:
        """Become the broker (exec): for a supervisor that restarts it and stops it on exit."""
        if self.pid() is not None and self.answers():
            raise BrokerError(f"a broker already runs on {self.bootstrap} (pid {self.pid()})")
        argv = self._prepare()
        self.pid_file.write_text(str(os.getpid()))  # exec keeps the pid
        os.execvp(argv[0], argv)

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`). False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None or _is_zombie(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(
            running=pid is not None and self.answers(),
            pid=pid,
            bootstrap=self.bootstrap,
            data_dir=self.data_dir,
            log_file=self.log_file,
        )


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, IndexError):
        return True
