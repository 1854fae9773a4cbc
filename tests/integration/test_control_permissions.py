"""`.control` requests run with the requester's permissions: `jfs info`, `jfs summary`, `jfs warmup` (and raw
requests naming inodes, which no kernel path check covers) show an unprivileged user nothing of root's
private files and directories, through a real mount on SQLite and on Redis (db 5)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir

USER = 4242
STAFF = 4300


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def volume(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import asyncio

    from jfs.adapters.kv.registry import open_kv

    base = tmp_path_factory.mktemp("control")
    if request.param == "sqlite":
        url = f"sqlite3://{base}/meta.db"
    else:
        url = f"{request.getfixturevalue('redis_server_url')}/5"

        async def flush() -> None:
            kv = await open_kv(url)
            try:
                await kv.reset()
            finally:
                await kv.close()

        asyncio.run(flush())
    format_volume(url, str(base / "bucket"))
    with reachable_dir("jfs-control-") as outside:  # outside pytest's 0700 tree: other users reach it
        with mounted(url, outside / "mnt") as mnt:
            mnt.chmod(0o755)
            yield mnt


@pytest.fixture
def top(volume: Path, request: pytest.FixtureRequest) -> Path:
    name: str = request.node.name
    d = volume / name.replace("[", "-").replace("]", "")
    d.mkdir()
    d.chmod(0o755)
    return d


def _user_env() -> dict[str, str]:
    """This interpreter's import path for another user: the source tree, then this environment's packages."""
    paths = [str(Path(__file__).resolve().parents[2]), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return {**os.environ, "HOME": "/tmp", "PYTHONNOUSERSITE": "1", "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


@functools.cache
def _user_python() -> str:
    """A Python of this version that an unprivileged user may run (this one may live under root's 0700
    home), with this environment's packages reachable through PYTHONPATH."""
    v = sys.version_info
    for exe in (sys.executable, f"/usr/bin/python{v.major}.{v.minor}", f"/usr/local/bin/python{v.major}.{v.minor}"):
        try:
            res = _run_as([exe, "-c", "import jfs.cli.main"])
        except OSError:
            continue
        if res.returncode == 0:
            return exe
    pytest.skip(f"no Python {v.major}.{v.minor} runnable by uid {USER} imports jfs")


def _run_as(argv: list[str], uid: int = USER, groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `uid` (primary group `uid`, supplementary `groups`)."""

    def drop() -> None:
        os.setgroups(list(groups))
        os.setgid(uid)
        os.setuid(uid)

    return subprocess.run(argv, capture_output=True, text=True, preexec_fn=drop if uid else None, timeout=60,
                          cwd="/", env=_user_env())


def _jfs_as(*args: str, uid: int = USER) -> subprocess.CompletedProcess[str]:
    return _run_as([_user_python(), "-m", "jfs.cli.main", *args], uid)


_ASK = ("import sys\n"
        "with open(sys.argv[1], 'r+b', buffering=0) as f:\n"
        "    f.write(sys.argv[2].encode())\n"
        "    f.seek(0)\n"
        "    sys.stdout.write(f.read(1 << 24).decode())\n")


def _ask_as(mnt: Path, request: dict[str, object], uid: int = USER, groups: tuple[int, ...] = ()) -> dict[str, object]:
    """A raw `.control` request written by `uid` (not through the CLI, which resolves paths first)."""
    res = _run_as([_user_python(), "-c", _ASK, str(mnt / ".control"), json.dumps(request)], uid, groups)
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def _denied(doc: dict[str, object]) -> bool:
    return doc == {"error": "Permission denied", "errno": 13}


def _private_tree(top: Path) -> dict[str, Path]:
    """top/priv (0700: private-a 0644, private-b 0600, private-sub 0777), top/secret (0600), all root's."""
    p = {"priv": top / "priv", "secret": top / "secret"}
    p["priv"].mkdir(mode=0o700)
    p["priv"].chmod(0o700)
    p["a"] = p["priv"] / "private-a"
    p["a"].write_bytes(b"a" * 5000)
    p["a"].chmod(0o644)
    p["b"] = p["priv"] / "private-b"
    p["b"].write_bytes(b"b" * 70)
    p["b"].chmod(0o600)
    p["sub"] = p["priv"] / "private-sub"
    p["sub"].mkdir()
    p["sub"].chmod(0o777)
    (p["sub"] / "victim").mkdir()
    p["secret"].write_bytes(os.urandom(200_000))
    p["secret"].chmod(0o600)
    return p


def test_private_inodes_are_refused_to_another_user(volume: Path, top: Path) -> None:
    mnt = volume
    p = _private_tree(top)
    assert _run_as(["ls", str(top)]).returncode == 0  # reachable: the refusals below are about the files
    root_info = json.loads(jfs("info", str(p["secret"]), "--json").stdout)
    objects = [o for c in root_info["chunks"] for s in c["slices"] for o in s["objects"]]
    assert objects
    secrets = ["private-a", "private-b", "private-sub", *objects]

    # The CLI: each request is refused with one "permission denied" line, and nothing leaks.
    for args in (("info", str(p["secret"])), ("info", str(p["secret"]), "--json"), ("info", str(p["priv"])),
                 ("summary", str(p["priv"])), ("summary", str(p["priv"]), "--json"),
                 ("warmup", str(p["secret"])), ("warmup", str(p["priv"]))):
        res = _jfs_as(*args)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert "permission denied" in res.stderr.lower(), (args, res.stderr)
        assert [s for s in secrets if s in res.stdout + res.stderr] == [], args

    # Raw requests naming the inodes: the kernel checked no path, jfs checks the requester.
    ino = {k: os.lstat(v).st_ino for k, v in p.items()}
    requests: list[dict[str, object]] = [
        {"op": "info", "inode": ino["secret"]},
        {"op": "info", "inode": ino["b"]},
        {"op": "info", "inode": ino["a"]},  # 0644, but inside a 0700 directory
        {"op": "info", "inode": ino["priv"], "recursive": True},
        {"op": "info", "inode": ino["sub"], "recursive": True},
        {"op": "summary", "inode": ino["priv"], "depth": 3},
        {"op": "summary", "inode": ino["sub"]},
        {"op": "warmup", "inodes": [ino["secret"]]},
        {"op": "warmup", "inodes": [ino["a"]]},
        {"op": "warmup", "inodes": [ino["priv"]]},
        {"op": "rmr", "parent": ino["sub"], "name": "victim"},  # 0777, but inside a 0700 directory
    ]
    for req in requests:
        doc = _ask_as(mnt, req)
        assert _denied(doc), (req, doc)
    assert (p["sub"] / "victim").is_dir()
    # A user who wrote nothing in .control gets nothing either.
    res = _run_as([_user_python(), "-c", "import sys; sys.stdout.write(open(sys.argv[1], 'rb').read().decode())",
                   str(mnt / ".control")])
    assert json.loads(res.stdout)["errno"] == 22

    # Root still sees everything.
    doc = json.loads(jfs("summary", str(p["priv"]), "--json").stdout)
    assert {c["name"] for c in doc["children"]} == {"private-a", "private-b", "private-sub"}
    assert doc["unreadable"] == 0
    assert _ask_as(mnt, {"op": "info", "inode": ino["secret"]}, uid=0)["chunks"] == root_info["chunks"]
    assert "warmed up 2 files" in jfs("warmup", str(p["priv"])).stdout


def test_own_files_work_and_an_unreadable_subtree_is_reported(volume: Path, top: Path) -> None:
    mine = top / "mine"
    mine.mkdir()
    os.chown(mine, USER, USER)
    res = _run_as(["/bin/sh", "-c", f"head -c 300000 /dev/urandom > '{mine / 'own'}'"])
    assert res.returncode == 0, res.stderr
    shared = top / "shared"
    shared.mkdir()
    (shared / "open").write_bytes(b"o" * 100)
    (shared / "closed").mkdir(mode=0o700)
    (shared / "closed").chmod(0o700)
    (shared / "closed" / "hidden-name").write_bytes(b"h" * 50_000)
    (shared / "pubsecret").write_bytes(b"s" * 10)
    (shared / "pubsecret").chmod(0o600)

    # The user's own files: everything, as before.
    doc = json.loads(_jfs_as("info", str(mine / "own"), "--json").stdout)
    assert doc["length"] == 300_000 and doc["chunks"][0]["slices"][0]["objects"]
    res = _jfs_as("warmup", str(mine))
    assert res.returncode == 0 and "warmed up 1 files" in res.stdout, res.stderr
    res = _jfs_as("summary", str(mine), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["files"] == 1

    # A tree with one unreadable subdirectory: reported as such, the rest counted (as du(1): status 1).
    res = _jfs_as("summary", str(shared), "--json")
    assert res.returncode == 1 and "1 directory not readable" in res.stderr
    doc = json.loads(res.stdout)
    assert (doc["files"], doc["dirs"], doc["length"], doc["unreadable"]) == (2, 2, 110, 1)
    closed = next(c for c in doc["children"] if c["name"] == "closed")
    assert closed["denied"] is True and "children" not in closed
    assert "hidden-name" not in res.stdout
    res = _jfs_as("summary", str(shared))
    assert res.returncode == 1 and "permission denied" in res.stdout and "hidden-name" not in res.stdout
    res = _jfs_as("info", str(shared))
    assert res.returncode == 1 and "unreadable dirs: 1" in res.stdout and "not readable" in res.stderr
    res = _jfs_as("warmup", str(shared), "--json")
    assert res.returncode == 1
    assert {k: json.loads(res.stdout)[k] for k in ("files", "denied", "errors")} == {"files": 1, "denied": 2,
                                                                                      "errors": 0}
    # Several paths: the refused one is named, the others are warmed.
    res = _jfs_as("warmup", str(shared / "open"), str(shared / "pubsecret"), str(mine / "own"))
    assert res.returncode == 1 and "warmed up 2 files" in res.stdout
    assert f"{shared / 'pubsecret'}: Permission denied" in res.stderr

    # Root: all of it.
    res = jfs("summary", str(shared), "--json")
    doc = json.loads(res.stdout)
    assert (doc["files"], doc["unreadable"]) == (3, 0) and "hidden-name" in res.stdout


def test_supplementary_groups_of_the_requester_count(volume: Path, top: Path) -> None:
    d = top / "staff"
    d.mkdir()
    os.chown(d, 0, STAFF)
    d.chmod(0o750)
    f = d / "report"
    f.write_bytes(b"r" * 1000)
    os.chown(f, 0, STAFF)
    f.chmod(0o640)
    request = {"op": "info", "inode": os.lstat(f).st_ino}
    assert _denied(_ask_as(volume, request))
    doc = _ask_as(volume, request, groups=(STAFF,))
    assert doc["length"] == 1000 and doc["chunks"]
    summary = _ask_as(volume, {"op": "summary", "inode": os.lstat(d).st_ino, "name": "staff"}, groups=(STAFF,))
    assert summary["files"] == 1
