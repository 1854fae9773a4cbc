"""Every object-store adapter (memory, file, SeaweedFS S3, and JFS_TEST_OBJECT_URL if set) against the port contract."""

from jfs.testing.object_contract import *  # noqa: F403
from jfs.testing.object_fixtures import *  # noqa: F403
