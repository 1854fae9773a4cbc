"""CPU per cached 4 KiB READ inside the data path (`DataPath.read_now` from the page-cached disk cache),
in-process: no FUSE, no mount, so that a loaded machine's noise mostly cancels out (issue 17, ADR 0055).

Usage (A/B: run alternately with each tree first on PYTHONPATH):
    cd /tmp && PYTHONPATH=/tmp/base /path/.venv/bin/python /path/bench/read_now_cpu.py base [--uncached]
    cd /tmp && /path/.venv/bin/python /path/bench/read_now_cpu.py new [--uncached]

Prints the best three of five passes of 20,000 random 4 KiB reads (memory cache cleared, 16 blocks of the
harness's block size in the disk cache), µs of process CPU per call.

`--uncached` (ADR 0074): blocks of 4 MiB (as a mount's: the kernel's read-ahead around a missed read covers
a 64 KiB entry whole, not a 4 MiB one), 32 of them, the reads anywhere in them; the disk cache lives under the current directory (it must not be tmpfs) and its
entries' pages are dropped (``POSIX_FADV_DONTNEED``) before each pass, as the writer's ``O_DIRECT`` entries
or a ``drop_caches`` leave them; each read is `read_now`, else `await read` (the pool's read). Prints, per
pass, µs of process CPU and of wall time per read and the share answered by `read_now`; the cache gets the
mount's warming (`file_pages.willneed`) when the tree has it.
"""
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid

import jfs
from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.memory import MemoryStore
from jfs.testing.data_harness import DataVolume


def _drop_pages(root):
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


async def main():
    uncached = "--uncached" in sys.argv
    store = MemoryStore(f"rn-{uuid.uuid4().hex}")
    async def opener():
        return store
    extra = {}
    if uncached:
        try:
            from jfs.adapters.objects.file_pages import willneed
            extra["cache_warm"] = willneed
        except ImportError:
            pass  # a tree without warming (ADR 0074)
    with tempfile.TemporaryDirectory(dir="." if uncached else None) as d:
        vol = await DataVolume.create(await open_kv("memory://"), opener, cache_dir=d, cache_small_writes=False,
                                      cache_full_writes=False, cache_loads=True, compact_on_read=False,
                                      attr_ttl=3600.0, block_kib=4096 if uncached else 64, **extra)
        bs = vol.dp.reader.block_size
        nblocks = 32 if uncached else 16
        data = os.urandom(nblocks * bs)
        ino = await vol.write_new_file(b"f", data)
        h = await vol.dp.open(ino)
        for b in range(nblocks):
            await vol.dp.read(h, b * bs + 8192, 4096)
        await vol.dp.fetcher.settle()
        vol.dp.mem.clear()
        rnd = random.Random(1)
        span = bs // 4096 if uncached else bs // 4096 // 4
        offs = [rnd.randrange(nblocks) * bs + 4096 * rnd.randrange(1, span) for _ in range(20000)]
        assert vol.dp.read_now(h, offs[0], 4096) is not None
        best = []
        for _ in range(5):
            if uncached:
                _drop_pages(d)
                now = 0
                t0, w0 = time.process_time(), time.perf_counter()
                for off in offs:
                    if vol.dp.read_now(h, off, 4096) is not None:
                        now += 1
                    else:
                        await vol.dp.read(h, off, 4096)
                cpu, wall = time.process_time() - t0, time.perf_counter() - w0
                print(f"  pass: {cpu / len(offs) * 1e6:.1f} µs CPU, {wall / len(offs) * 1e6:.1f} µs wall per read, "
                      f"{now / len(offs):.1%} by read_now", flush=True)
                best.append(cpu / len(offs) * 1e6)
                continue
            t0 = time.process_time()
            for off in offs:
                vol.dp.read_now(h, off, 4096)
            best.append((time.process_time() - t0) / len(offs) * 1e6)
        print(f"{sys.argv[1]}: {jfs.__file__}: bs {bs}: µs per read{' (uncached)' if uncached else '_now'} "
              f"{sorted(best)[:3]}")
        await vol.dp.release(h)
        await vol.close()

asyncio.run(main())
