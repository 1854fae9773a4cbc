"""Options every command that serves a volume shares (mount, gateway, webdav): one declaration each."""

from __future__ import annotations

from typing import Annotated

import typer

from jfs.cli.units import size_option

CacheDir = Annotated[
    str | None,
    typer.Option(help="Disk block cache directory (default /var/jfsCache as root, ~/.jfs/cache otherwise).",
                 rich_help_panel="Cache", show_default=False),
]
CacheSize = Annotated[int, typer.Option(
    parser=size_option("M"), metavar="SIZE", show_default="100G", rich_help_panel="Cache",
    help="Disk cache size, with a unit (K, M, G, T); a plain number is MiB, as in JuiceFS.")]
BufferSize = Annotated[int, typer.Option(
    parser=size_option("M"), metavar="SIZE", show_default="300M", rich_help_panel="Data",
    help="Write buffer, with a unit (a plain number is MiB); writers wait when it is full.")]
MaxUploads = Annotated[int, typer.Option(help="Concurrent block uploads.", rich_help_panel="Data")]

DEFAULT_CACHE_SIZE = 100 << 30
DEFAULT_BUFFER_SIZE = 300 << 20
