"""``jfs stats``, ``jfs profile`` and ``jfs debug``: watching a live mount through its virtual files.

`stats` samples ``.stats`` every interval and prints one line of rates (JuiceFS's ``stats``); `profile`
aggregates ``.accesslog`` lines (live from a mount, or a saved log) by operation, uid or pid; `debug`
packs what a bug report needs into one tar.gz. They only read files of the mount: no engine client.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import sys
import tarfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer

from jfs.app.errors import JfsError
from jfs.app.metrics import parse_stats
from jfs.cli import installed_version
from jfs.cli.app_calls import usage_error
from jfs.cli.control_client import mount_root
from jfs.cli.errors import report
from jfs.cli.render import mask, stdout_console

# ---------------------------------------------------------------------------------------------------
# stats


def _sum(stats: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in stats.items() if k.startswith(prefix))


def _pick(stats: dict[str, float], name: str, method: str) -> float:
    return stats.get(f'{name}{{method="{method}"}}', 0.0)


SECTIONS = {
    "t": ("time", ["now"]),
    "u": ("usage", ["cpu", "mem"]),
    "f": ("fuse", ["ops", "lat"]),
    "m": ("meta", ["ops", "lat"]),
    "c": ("blockcache", ["hit", "miss", "ratio"]),
    "o": ("object", ["get", "get_B", "put", "put_B"]),
}
"""`--schema` letters → (section, columns), in JuiceFS's order."""

VERBOSE = {
    "f": ["read", "write"],
    "m": ["txn", "txn_lat", "restart"],
    "c": ["hit_B", "write", "write_B"],
    "o": ["del", "errors"],
}
"""Columns ``--verbosity 1`` adds after a section's own (JuiceFS's ``-l 1`` shows more per section too)."""


def columns(schema: str, verbosity: int) -> list[str]:
    """The header of `jfs stats`: ``section.column`` for every column of the `schema` letters."""
    return [f"{SECTIONS[c][0]}.{col}" for c in schema
            for col in SECTIONS[c][1] + (VERBOSE.get(c, []) if verbosity > 0 else [])]


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def stats_row(prev: dict[str, float], cur: dict[str, float], seconds: float, schema: str,
              verbosity: int = 0) -> list[str]:
    """The columns of one line of `jfs stats` (`columns`): rates over `seconds` between two ``.stats``
    samples."""
    dt = max(seconds, 1e-9)
    more = verbosity > 0

    def delta(prefix: str) -> float:
        return _sum(cur, prefix) - _sum(prev, prefix)

    out: list[str] = []
    for letter in schema:
        if letter == "t":
            out.append(time.strftime("%H:%M:%S"))
        elif letter == "u":
            cpu = (cur.get("jfs_cpu_usage", 0) - prev.get("jfs_cpu_usage", 0)) / dt * 100
            out += [f"{cpu:.1f}%", _human(cur.get("jfs_memory", 0))]
        elif letter == "f":
            ops, secs = delta("jfs_fuse_ops_total"), delta("jfs_fuse_ops_durations_seconds_sum")
            out += [_human(ops / dt), f"{secs / ops * 1000:.2f}" if ops else "0"]
            if more:
                out += [_human(delta('jfs_fuse_ops_total{method="read"}') / dt),
                        _human(delta('jfs_fuse_ops_total{method="write"}') / dt)]
        elif letter == "m":
            ops, secs = delta("jfs_meta_ops_total"), delta("jfs_meta_ops_durations_seconds_sum")
            out += [_human(ops / dt), f"{secs / ops * 1000:.2f}" if ops else "0"]
            if more:
                txn = delta("jfs_transaction_durations_histogram_seconds_count")
                txn_secs = delta("jfs_transaction_durations_histogram_seconds_sum")
                out += [_human(txn / dt), f"{txn_secs / txn * 1000:.2f}" if txn else "0",
                        _human(delta("jfs_transaction_restart") / dt)]
        elif letter == "c":
            hits = delta("jfs_blockcache_hits") + delta("jfs_memcache_hits")
            # A memory-cache miss goes on to the disk cache: only the last layer's misses are real.
            miss = delta("jfs_blockcache_miss") if "jfs_blockcache_miss" in cur else delta("jfs_memcache_miss")
            ratio = f"{hits / (hits + miss) * 100:.0f}%" if hits + miss else "-"
            out += [_human(hits / dt), _human(miss / dt), ratio]
            if more:
                hit_bytes = delta("jfs_blockcache_hit_bytes") + delta("jfs_memcache_hit_bytes")
                out += [_human(hit_bytes / dt), _human(delta("jfs_blockcache_writes") / dt),
                        _human(delta("jfs_blockcache_write_bytes") / dt)]
        elif letter == "o":
            rows = []
            for method in ("GET", "PUT"):
                count = _pick(cur, "jfs_object_request_durations_histogram_seconds_count", method) - _pick(
                    prev, "jfs_object_request_durations_histogram_seconds_count", method)
                size = _pick(cur, "jfs_object_request_data_bytes", method) - _pick(
                    prev, "jfs_object_request_data_bytes", method)
                rows += [_human(count / dt), _human(size / dt)]
            out += rows
            if more:
                dels = _pick(cur, "jfs_object_request_durations_histogram_seconds_count", "DELETE") - _pick(
                    prev, "jfs_object_request_durations_histogram_seconds_count", "DELETE")
                out += [_human(dels / dt), _human(delta("jfs_object_request_errors") / dt)]
    return out


def _read_stats(root: str) -> dict[str, float]:
    with open(os.path.join(root, ".stats"), encoding="utf-8") as f:
        return parse_stats(f.read())


def _root(path: str) -> str:
    root = mount_root(path)
    if not os.path.exists(os.path.join(root, ".stats")):
        raise JfsError(f"{path} is not on a jfs mount")
    return root


def stats(
    mountpoint: Annotated[str, typer.Argument(metavar="MOUNTPOINT", help="A jfs mount (or a path in it).")],
    schema: Annotated[str, typer.Option(
        help="Sections: t time, u usage, f fuse, m meta, c blockcache, o object.")] = "ufmco",
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between lines.")] = 1.0,
    count: Annotated[int, typer.Option("--count", "-c", min=0, help="Lines to print (0 = until Ctrl-C).")] = 0,
    verbosity: Annotated[int, typer.Option("--verbosity", "-l", min=0, max=1,
                                           help="1: more columns per section (reads/writes, transactions, "
                                                "cache bytes, object deletes and errors).")] = 0,
) -> None:
    """Show a mount's throughput, latency (ms), cache hits and object requests, one line per interval."""
    letters = "".join(c for c in schema if c in SECTIONS)
    if not letters:
        usage_error(f"--schema {schema!r}: use letters of {''.join(SECTIONS)}")
    try:
        root = _root(mountpoint)
        headers = columns(letters, verbosity)
        widths = [max(len(h), 7) + 1 for h in headers]
        typer.echo("".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
        prev, then = _read_stats(root), time.monotonic()
        printed = 0
        while not count or printed < count:
            time.sleep(interval)
            cur, now = _read_stats(root), time.monotonic()
            row = stats_row(prev, cur, now - then, letters, verbosity)
            typer.echo("".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
            prev, then, printed = cur, now, printed + 1
    except KeyboardInterrupt:
        return
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


# ---------------------------------------------------------------------------------------------------
# profile

LINE = re.compile(
    r"^(?P<stamp>\S+ \S+) \[uid:(?P<uid>\d+),gid:(?P<gid>\d+),pid:(?P<pid>\d+)\] (?P<op>\w+) "
    r"\((?P<args>.*)\)(?: - (?P<status>.*?))? <(?P<secs>[\d.]+)>\s*$"
)


@dataclass
class Aggregate:
    """Counts and total seconds per key (an operation, uid or pid) of parsed access-log lines."""

    by: str = "op"
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    count: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def feed(self, lines: Iterable[str]) -> int:
        """Add the lines that parse and pass the filters; return how many were added."""
        added = 0
        for line in lines:
            m = LINE.match(line)
            if m is None:
                continue
            if any(want is not None and int(m[name]) != want
                   for name, want in (("uid", self.uid), ("gid", self.gid), ("pid", self.pid))):
                continue
            key = m[self.by]
            self.count[key] = self.count.get(key, 0) + 1
            self.seconds[key] = self.seconds.get(key, 0.0) + float(m["secs"])
            if m["status"] not in (None, "OK"):
                self.errors[key] = self.errors.get(key, 0) + 1
            added += 1
        return added

    def table(self, top: int) -> list[tuple[str, int, float, float, int]]:
        """(key, count, total seconds, average ms, errors), most total time first."""
        keys = sorted(self.count, key=lambda k: (-self.seconds[k], k))[:top]
        return [(k, self.count[k], self.seconds[k], self.seconds[k] / self.count[k] * 1000, self.errors.get(k, 0))
                for k in keys]


class GroupBy(StrEnum):
    op = "op"
    uid = "uid"
    pid = "pid"


def _render(agg: Aggregate, top: int, title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in (agg.by.upper(), "COUNT", "TOTAL(s)", "AVG(ms)", "ERRORS"):
        table.add_column(name, justify="left" if name == agg.by.upper() else "right")
    for key, n, secs, avg, errs in agg.table(top):
        table.add_row(key, str(n), f"{secs:.3f}", f"{avg:.3f}", str(errs))
    stdout_console().print(table)


class _Tail:
    """Reads ``.accesslog`` on a daemon thread (its reads block until an operation happens)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self._partial = b""
        threading.Thread(target=self._run, daemon=True, name="jfs-profile").start()

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            *whole, self._partial = (self._partial + chunk).split(b"\n")
            with self.lock:
                self.lines.extend(w.decode(errors="replace") for w in whole)

    def take(self) -> list[str]:
        with self.lock:
            out, self.lines = self.lines, []
        return out


def profile(
    source: Annotated[str, typer.Argument(metavar="MOUNTPOINT|ACCESSLOG",
                                          help="A jfs mount (live), or a saved copy of its .accesslog (replayed).")],
    group_by: Annotated[GroupBy, typer.Option("--group-by", "-b", help="Aggregate by operation, uid or pid.")] = GroupBy.op,
    uid: Annotated[int | None, typer.Option("--uid", "-u", help="Only this user.", show_default=False)] = None,
    gid: Annotated[int | None, typer.Option("--gid", "-g", help="Only this group.", show_default=False)] = None,
    pid: Annotated[int | None, typer.Option("--pid", "-p", help="Only this process.", show_default=False)] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between tables (live).")] = 2.0,
    count: Annotated[int, typer.Option("--count", "-c", min=0, help="Tables to print (live; 0 = until Ctrl-C).")] = 0,
    top: Annotated[int, typer.Option(min=1, help="Rows per table.")] = 20,
) -> None:
    """Aggregate a mount's access log by operation (or uid, pid): count, total and average time."""
    agg = Aggregate(by=group_by.value, uid=uid, gid=gid, pid=pid)
    try:
        if os.path.isfile(source):
            with open(source, encoding="utf-8", errors="replace") as f:
                n = agg.feed(f)
            _render(agg, top, f"{source}: {n} operations")
            return
        root = _root(source)
        tail = _Tail(os.path.join(root, ".accesslog"))
        started, printed = time.monotonic(), 0
        while not count or printed < count:
            time.sleep(interval)
            agg.feed(tail.take())
            printed += 1
            _render(agg, top, f"{root}: {sum(agg.count.values())} operations in {time.monotonic() - started:.1f} s")
    except KeyboardInterrupt:
        return
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


# ---------------------------------------------------------------------------------------------------
# debug

LOG_CANDIDATES = ("/var/log/jfs.log", "~/.jfs/jfs.log")


def _log_tail(limit: int) -> tuple[str, bytes] | None:
    for candidate in LOG_CANDIDATES:
        path = os.path.expanduser(candidate)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit * 400))
                lines = f.read().splitlines(keepends=True)[-limit:]
            return path, b"".join(lines)
    return None


def _environment(root: str) -> dict[str, Any]:
    from importlib.metadata import distributions

    mountinfo = ""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mountinfo = next((ln.strip() for ln in f if ln.split()[4] == root), "")
    return {
        "jfs": installed_version(),
        "python": sys.version,
        "platform": platform.platform(),
        "uname": list(platform.uname()),
        "mountpoint": root,
        "mountinfo": mountinfo,
        "collected": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions()),
    }


def debug(
    mountpoint: Annotated[str, typer.Argument(metavar="MOUNTPOINT", help="A jfs mount.")],
    out_dir: Annotated[str, typer.Option(help="Where to write the archive.")] = ".",
    limit: Annotated[int, typer.Option(min=0, help="Log lines to include.")] = 5000,
    stats_sec: Annotated[float, typer.Option(min=0, help="Seconds between the two .stats samples.")] = 5.0,
    profile_sec: Annotated[float, typer.Option(min=0, help="Seconds of access log to include (0 = none).")] = 0.0,
) -> None:
    """Collect what a bug report needs into one tar.gz (versions, settings without secrets, .stats, the log).

    The archive holds environment.json (jfs, Python, kernel, packages, the mount's mountinfo line),
    config.json (``.config``, secrets removed), two ``.stats`` samples, the tail of the background log and,
    with --profile-sec, that many seconds of ``.accesslog``.
    """
    try:
        root = _root(mountpoint)
        tail = _Tail(os.path.join(root, ".accesslog")) if profile_sec else None
        with open(os.path.join(root, ".config"), encoding="utf-8") as f:
            config = mask(json.load(f))
        files: dict[str, bytes] = {
            "environment.json": json.dumps(_environment(root), indent=2).encode(),
            "config.json": json.dumps(config, indent=2).encode(),
        }
        with open(os.path.join(root, ".stats"), "rb") as f:
            files["stats.0.txt"] = f.read()
        time.sleep(max(stats_sec, profile_sec))
        with open(os.path.join(root, ".stats"), "rb") as f:
            files[f"stats.{stats_sec:g}s.txt"] = f.read()
        if tail is not None:
            files["accesslog.txt"] = "".join(line + "\n" for line in tail.take()).encode()
        log = _log_tail(limit)
        if log is not None:
            files["jfs.log"] = log[1]
        name = config.get("Format", {}).get("Name", "jfs")
        stamp = time.strftime("%Y%m%d%H%M%S")
        os.makedirs(out_dir, exist_ok=True)
        archive = os.path.join(os.path.abspath(out_dir), f"jfs-debug-{name}-{stamp}.tar.gz")
        prefix = f"jfs-debug-{name}-{stamp}"
        with tarfile.open(archive, "w:gz") as tar:
            for member, data in files.items():
                info = tarfile.TarInfo(f"{prefix}/{member}")
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
        typer.echo(archive)
    except Exception as exc:
        raise typer.Exit(report(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``stats``, ``profile`` and ``debug`` to the `jfs` command."""
    app.command("stats", epilog="[bold]Examples:[/bold]\n\njfs stats /mnt/jfs\n\n"
                "jfs stats /mnt/jfs --schema fo --interval 5 --count 12")(stats)
    app.command("profile", epilog="[bold]Examples:[/bold]\n\njfs profile /mnt/jfs\n\n"
                "cat /mnt/jfs/.accesslog > access.log  # then: jfs profile access.log --group-by pid\n\n"
                "jfs profile /mnt/jfs --uid 1000 --interval 5")(profile)
    app.command("debug", epilog="[bold]Examples:[/bold]\n\njfs debug /mnt/jfs\n\n"
                "jfs debug /mnt/jfs --out-dir /tmp --stats-sec 10 --profile-sec 10")(debug)
