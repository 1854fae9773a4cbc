"""The ``jfs`` command group: a command module is imported when one of its commands is used (ADR 0063).

`jfs.cli.main` lists every command once, in the order of ``jfs --help`` (`COMMANDS`: the command's name
and the ``jfs.cli`` module whose ``register(app)`` adds it, or ``None`` for those defined in `jfs.cli.main`).
`LazyGroup` answers with that list at once; the first `get_command` of a name imports its module, lets it
register on a scratch `typer.Typer` and builds the click commands from that, as typer builds a group. So
``jfs status`` imports `jfs.cli.volume_cmd` and nothing of ``bench``, ``webdav``, ``stats``, …; ``jfs --help``,
shell completion and a mistyped name (for the "did you mean" hint) load them all.

Contract: the commands, their order, their help and their behaviour are those of registering every module
on the app itself (tests/unit/test_cli_lazy.py checks the list against the modules).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A typer group whose commands from `commands_table` are built on first use."""

    commands_table: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    """(name, module under ``jfs.cli`` or None for a command registered on the app itself), in help order."""

    pretty_exceptions_short: ClassVar[bool] = True

    def list_commands(self, ctx: Any) -> list[str]:
        eager = [name for name in self.commands if name not in dict(self.commands_table)]
        return [name for name, _ in self.commands_table] + eager

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None:
            module = dict(self.commands_table).get(cmd_name)
            if module is not None:
                self._load(module)
                command = self.commands.get(cmd_name)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in dict(self.commands_table):
            self.load_all()  # an unknown name: the "did you mean" hint looks at every command
        return super().resolve_command(ctx, args)

    def load_all(self) -> None:
        """Build every command of the table (help, completion, tests)."""
        for module in dict.fromkeys(m for _, m in self.commands_table if m is not None):
            self._load(module)

    def _load(self, module: str) -> None:
        if any(name in self.commands for name, m in self.commands_table if m == module):
            return
        from typer.main import TyperInfo, get_group_from_info

        scratch = typer.Typer()
        importlib.import_module(f"jfs.cli.{module}").register(scratch)
        built = get_group_from_info(
            TyperInfo(scratch), pretty_exceptions_short=self.pretty_exceptions_short,
            suggest_commands=self.suggest_commands, rich_markup_mode=self.rich_markup_mode,
        )
        for name, command in built.commands.items():
            self.commands[name] = command
