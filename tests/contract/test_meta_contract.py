"""The metadata-engine contract on every adapter (see jfs/testing/meta_contract.py)."""

from jfs.testing.meta_contract import *  # noqa: F403
