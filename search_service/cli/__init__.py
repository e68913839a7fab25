"""The ``kb`` command: a thin CLI over the service layer the API also uses.

One module per group of commands: authoring (new, lint, stale), indexing (index), querying (search,
ask), quality (eval, tune) and serving (serve, token, gaps). Commands parse options, call
:mod:`search_service.service` (or the stage it fronts) and print; no logic lives only here.
"""

from __future__ import annotations

import logging

import click

from search_service import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kb")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """Knowledge base of the AI Center of Excellence: author, index, search and serve playbooks.

    \b
    Examples:
      kb new playbook "Running a vendor proof of concept" --area delivery
      kb lint
      kb stale --within 30
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Registered after `main` exists: each module adds its commands to it.
from search_service.cli import authoring, indexing, quality, querying, serving  # noqa: E402

for _module in (authoring, indexing, querying, quality, serving):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
