"""The KV-port contract on every adapter (see jfs/testing/kv_contract.py)."""

from jfs.testing.kv_contract import *  # noqa: F403
