"""Options every command that serves a volume shares (mount, gateway, webdav): one declaration each."""

from __future__ import annotations

from typing import Annotated

import typer

CacheDir = Annotated[
    str | None,
    typer.Option(help="Disk block cache directory (default /var/jfsCache as root, ~/.jfs/cache otherwise).",
                 rich_help_panel="Cache", show_default=False),
]
CacheSize = Annotated[int, typer.Option(help="Disk cache size in MiB.", rich_help_panel="Cache")]
BufferSize = Annotated[
    int, typer.Option(help="Write buffer in MiB (writers wait when it is full).", rich_help_panel="Data")
]
MaxUploads = Annotated[int, typer.Option(help="Concurrent block uploads.", rich_help_panel="Data")]
