"""The CLI reference of docs/cli.md, generated from ``build_parser()`` at build time.

Every build (docs/hooks/generated.py) replaces the page's marker with each command of
``atriva-infer``: its usage line, description and a table of every positional argument and
option (flags, value, default, help), read from the argparse objects themselves, so the page
cannot drift from the parser. tests/docs/test_cli_page.py checks the built page against it.
"""

from __future__ import annotations

import argparse
import html

from mkdocs.exceptions import PluginError

PAGE = "cli.md"


def render_reference() -> str:
    """Markdown for the whole command line: the program's own options, then each command."""
    from atriva_inference.cli.parser import build_parser

    parser = build_parser()
    prog = parser.prog
    subparsers = _subparsers(parser)
    lines = [
        f"`{prog}` {_escape(parser.description or '')}",
        "",
        _usage(parser),
        "",
        _table(_own_actions(parser)),
        "",
        _escape(parser.epilog or ""),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for choice in subparsers._choices_actions:
        lines.append(f"| [`{choice.dest}`](#{prog}-{choice.dest}) | {_escape(choice.help or '')} |")
    lines.append("")
    for name, command in subparsers.choices.items():
        lines += [
            f"## {prog} {name} {{#{prog}-{name}}}",
            "",
            _escape(command.description or ""),
            "",
            _usage(command),
            "",
            _table(_own_actions(command)),
            "",
        ]
        if command.epilog:
            lines += [_escape(command.epilog), ""]
    return "\n".join(lines)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise PluginError(f"{parser.prog} has no subcommands")


def _own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS
    ]


def _usage(parser: argparse.ArgumentParser) -> str:
    # Wide enough that argparse does not wrap the usage line mid-option.
    formatter = argparse.HelpFormatter(parser.prog, width=10_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    usage = formatter.format_help().strip()
    return f"```text\n{usage}\n```"


def _table(actions: list[argparse.Action]) -> str:
    rows = ["| argument | value | default | description |", "|---|---|---|---|"]
    formatter = argparse.HelpFormatter("prog")
    for action in actions:
        names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.dest}`"
        rows.append(
            f"| {names} | {_value(action)} | {_default(action)} | "
            f"{_escape(formatter._expand_help(action) if action.help else '')} |"
        )
    return "\n".join(rows)


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None:
        return " \\| ".join(f"`{choice}`" for choice in action.choices)
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    suffix = {"*": " ...", "+": " ...", "?": " (optional)"}.get(str(action.nargs), "")
    return f"`{metavar}`{suffix}"


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.nargs == 0 or default in (None, argparse.SUPPRESS) or action.required:
        return ""
    return f"`{default}`"


def _escape(text: str) -> str:
    """Help text as table-safe Markdown: no raw HTML, no column breaks, no line breaks."""
    text = html.escape(" ".join(text.split()), quote=False)
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")
