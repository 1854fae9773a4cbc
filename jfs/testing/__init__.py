"""Test support shipped with jfs: contract suites and fixtures for adapter authors.

The KV contract runs against your own engine with (see `jfs.testing.kv_contract`)::

    pytest --pyargs jfs.testing.kv_contract --jfs-kv-url 'myengine://…'

(from a source tree that is not pip-installed, add ``-p jfs.testing.plugin``).
"""
