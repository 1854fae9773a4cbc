"""CPU per cached 4 KiB READ inside the data path (`DataPath.read_now` from the page-cached disk cache),
in-process: no FUSE, no mount, so that a loaded machine's noise mostly cancels out (issue 17, ADR 0055).

Usage (A/B: run alternately with each tree first on PYTHONPATH):
    cd /tmp && PYTHONPATH=/tmp/base /path/.venv/bin/python /path/bench/read_now_cpu.py base
    cd /tmp && /path/.venv/bin/python /path/bench/read_now_cpu.py new

Prints the best three of five passes of 20,000 random 4 KiB reads (memory cache cleared, 16 blocks of the
harness's block size in the disk cache), µs of process CPU per call.
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


async def main():
    store = MemoryStore(f"rn-{uuid.uuid4().hex}")
    async def opener():
        return store
    with tempfile.TemporaryDirectory() as d:
        vol = await DataVolume.create(await open_kv("memory://"), opener, cache_dir=d, cache_small_writes=False,
                                      cache_full_writes=False, cache_loads=True, compact_on_read=False,
                                      attr_ttl=3600.0)
        bs = vol.dp.reader.block_size
        data = os.urandom(16 * bs)
        ino = await vol.write_new_file(b"f", data)
        h = await vol.dp.open(ino)
        for b in range(16):
            await vol.dp.read(h, b * bs + 8192, 4096)
        await vol.dp.fetcher.settle()
        vol.dp.mem.clear()
        rnd = random.Random(1)
        offs = [rnd.randrange(16) * bs + 4096 * rnd.randrange(1, bs // 4096 // 4) for _ in range(20000)]
        assert vol.dp.read_now(h, offs[0], 4096) is not None
        best = []
        for _ in range(5):
            t0 = time.process_time()
            for off in offs:
                vol.dp.read_now(h, off, 4096)
            best.append((time.process_time() - t0) / len(offs) * 1e6)
        print(f"{sys.argv[1]}: {jfs.__file__}: bs {bs}: µs per read_now {sorted(best)[:3]}")
        await vol.dp.release(h)
        await vol.close()

asyncio.run(main())
