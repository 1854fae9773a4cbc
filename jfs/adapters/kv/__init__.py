"""KV adapters: one module per engine, each providing an opener registered in the ``jfs.kv`` entry points."""
