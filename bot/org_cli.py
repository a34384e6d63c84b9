"""Command line for the organisation and households: ``sisong org …`` and ``sisong households …``.

The commands are thin: each calls the service function the chat and the
console call too, and prints its result in Chinese (or JSON for scripts).
"""

from __future__ import annotations

import typer

org_app = typer.Typer(help="镇、片区、村、组、干部和工作群。", no_args_is_help=True)
households_app = typer.Typer(help="建档立卡户和监测户：导入、查看、绑定码。", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    import bot.binding_cli  # noqa: F401  (households codes)

    app.add_typer(org_app, name="org")
    app.add_typer(households_app, name="households")
