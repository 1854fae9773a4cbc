"""Test support shipped with jfs: contract suites and fixtures for adapter authors."""
