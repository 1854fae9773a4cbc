"""Throwaway etcd clusters for tests: one or more real `etcd` members on free loopback ports.

    with etcd_cluster(3) as cluster:       # or: cluster = start_etcd_cluster(3); ...; cluster.stop()
        kv = await open_kv(cluster.url("myvolume"))
        cluster.kill(cluster.leader())      # SIGKILL one member; cluster.start_member(i) brings it back

With ``tls=make_pki(dir)`` (jfs.testing.tls) the members serve clients over TLS with the PKI's server
certificate and require a client certificate signed by its CA (``--client-cert-auth``); `url()` then
carries JuiceFS's ``cacert``/``cert``/``key`` options. Peers still talk plain HTTP among themselves.

Members keep their data in a private directory (on /dev/shm when there is one: etcd fsyncs every
commit), elect quickly (short heartbeat and election timeouts) and log only warnings. `stop()` kills every
member and removes the directory — also when the test failed. Raises EtcdError when `etcd` is missing
(Debian: ``apt-get install etcd-server``) or a member does not become healthy within `timeout`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from jfs.testing.servers import free_port
from jfs.testing.tls import Pki


class EtcdError(RuntimeError):
    """The throwaway etcd cluster could not be started or queried."""


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    scheme: str = "http"
    host: str = "127.0.0.1"
    launcher: tuple[str, ...] = ()
    """Prefix of the member's command (e.g. ``nsenter --net=/proc/PID/ns/net``: another network namespace)."""

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.endpoint}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class EtcdCluster:
    directory: str
    members: list[EtcdMember]
    extra_args: tuple[str, ...] = ()
    binary: str = "etcd"
    tls: Pki | None = None

    @property
    def endpoints(self) -> str:
        """``host:port,host:port,…`` of every member (the address part of an etcd:// URL)."""
        return ",".join(m.endpoint for m in self.members)

    def url(self, prefix: str = "") -> str:
        """``etcd://127.0.0.1:P1,127.0.0.1:P2/prefix`` (plus ``?cacert=…&cert=…&key=…`` with TLS)."""
        url = f"etcd://{self.endpoints}/{prefix}"
        if self.tls is not None:
            t = self.tls
            url += f"?cacert={t.ca}&cert={t.client_cert}&key={t.client_key}"
        return url

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://{m.host}:{m.peer_port}" for m in self.members)

    def start_member(self, i: int, state: str = "new") -> None:
        """Start member `i` (again); its data directory is kept, so a restarted member rejoins."""
        m = self.members[i]
        if m.running:
            return
        cmd = [
            *m.launcher,
            self.binary,
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", f"http://{m.host}:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://{m.host}:{m.peer_port}",
            "--initial-cluster", self._initial_cluster(),
            "--initial-cluster-state", state,
            "--initial-cluster-token", os.path.basename(self.directory),
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--logger", "zap",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip
        if self.tls is not None:
            cmd += ["--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
                    "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]  # fmt: skip
        log = open(os.path.join(self.directory, f"{m.name}.log"), "ab")  # noqa: SIM115
        with log:
            m.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop member `i` abruptly (SIGKILL by default) and wait for it to exit."""
        m = self.members[i]
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(sig)
            try:
                m.process.wait(10)
            except subprocess.TimeoutExpired:
                m.process.kill()
                m.process.wait()

    def freeze(self, i: int) -> None:
        """SIGSTOP member `i`: it keeps its connections but answers nothing (like a partitioned member)."""
        m = self.members[i]
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(signal.SIGSTOP)

    def thaw(self, i: int) -> None:
        """SIGCONT member `i` after `freeze`."""
        m = self.members[i]
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(signal.SIGCONT)

    def status(self, i: int) -> dict[str, object] | None:
        """The member's ``/v3/maintenance/status`` reply, None when it does not answer."""
        m = self.members[i]
        req = urllib.request.Request(f"{m.client_url}/v3/maintenance/status", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=1, context=self._ssl_context()) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def leader(self, timeout: float = 15.0) -> int:
        """Index of the current leader (waits for one to be elected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, m in enumerate(self.members):
                if not m.running:
                    continue
                st = self.status(i) or {}
                header = st.get("header")
                if st.get("leader") and isinstance(header, dict) and st["leader"] == header.get("member_id"):
                    return i
            time.sleep(0.05)
        raise EtcdError(f"no etcd leader elected within {timeout:g} s")

    def move_leader(self, i: int) -> None:
        """Make member `i` the leader (``etcdctl move-leader``, sent to the current leader)."""
        leader = self.leader()
        if leader == i:
            return
        st = self.status(i) or {}
        header = st.get("header")
        if not isinstance(header, dict):
            raise EtcdError(f"member {i} does not answer")
        cmd = ["etcdctl", "--endpoints", self.members[leader].client_url, "move-leader",
               f"{int(header['member_id']):x}"]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                             env={**os.environ, "ETCDCTL_API": "3"})  # fmt: skip
        if res.returncode != 0:
            raise EtcdError(f"move-leader to member {i} failed: {res.stderr.strip()}")

    def healthy(self, i: int) -> bool:
        try:
            url = f"{self.members[i].client_url}/health"
            with urllib.request.urlopen(url, timeout=1, context=self._ssl_context()) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait until every running member reports healthy (a leader exists and it can serve)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [i for i, m in enumerate(self.members) if m.running]
            if running and all(self.healthy(i) for i in running):
                return
            dead = [m.name for m in self.members if m.process is not None and m.process.poll() is not None]
            if dead and len(dead) == len(self.members):
                break
            time.sleep(0.05)
        raise EtcdError(f"etcd did not become healthy within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, chars: int = 600) -> str:
        out = []
        for m in self.members:
            try:
                with open(os.path.join(self.directory, f"{m.name}.log"), errors="replace") as f:
                    out.append(f"{m.name}: {f.read()[-chars:].strip()}")
            except OSError:
                pass
        return " | ".join(out)

    def stop(self) -> None:
        """Kill every member and delete the cluster's directory; idempotent."""
        for i in range(len(self.members)):
            self.kill(i)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_etcd_cluster(
    size: int = 1, *extra_args: str, executable: str = "etcd", timeout: float = 20.0, tls: Pki | None = None,
    hosts: Sequence[str] = (), launchers: Sequence[tuple[str, ...]] = (),
) -> EtcdCluster:
    """Start a fresh `size`-member cluster on loopback; `extra_args` go to every member
    (e.g. ``"--max-txn-ops", "16"``); `tls` serves clients over TLS (module docstring). `hosts` and
    `launchers` give, per member, the address it listens on (127.0.0.1 by default) and a command prefix
    (see `EtcdMember.launcher`)."""
    binary = shutil.which(executable) or (
        f"/usr/bin/{executable}" if os.path.exists(f"/usr/bin/{executable}") else None
    )
    if binary is None:
        raise EtcdError(f"{executable} is not installed (apt-get install etcd-server)")
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    last = ""
    for _ in range(3):  # a free port may be taken by someone else before etcd binds it
        directory = tempfile.mkdtemp(prefix="jfs-etcd-", dir=base)
        members = [
            EtcdMember(f"m{i}", free_port(), free_port(), os.path.join(directory, f"m{i}"),
                       scheme="http" if tls is None else "https",
                       host=hosts[i] if i < len(hosts) else "127.0.0.1",
                       launcher=launchers[i] if i < len(launchers) else ())
            for i in range(size)
        ]  # fmt: skip
        cluster = EtcdCluster(directory, members, tuple(extra_args), binary, tls)
        try:
            for i in range(size):
                cluster.start_member(i)
            cluster.wait_healthy(timeout)
            return cluster
        except EtcdError as exc:
            last = str(exc)
            cluster.stop()
        except BaseException:
            cluster.stop()
            raise
    raise EtcdError(f"etcd did not start: {last}")


@contextlib.contextmanager
def etcd_cluster(size: int = 1, *extra_args: str, tls: Pki | None = None) -> Iterator[EtcdCluster]:
    """Context manager around `start_etcd_cluster` that always stops the cluster."""
    cluster = start_etcd_cluster(size, *extra_args, tls=tls)
    try:
        yield cluster
    finally:
        cluster.stop()
