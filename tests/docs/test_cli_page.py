"""The CLI page lists every subcommand and every option of ``atriva-infer``, as argparse has
them now (the page is generated from the parser at build time: this checks the built page)."""

from __future__ import annotations

import argparse
import html
import re

from atriva_inference.cli.parser import build_parser
from tests.docs.conftest import ROOT, built_page


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string, and the name of every positional argument."""
    names: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        names += action.option_strings or [action.dest]
    return names


def _sections(page: str) -> dict[str, str]:
    """The built page's text, cut at each ``<h2 id=...>``."""
    parts = re.split(r'<h2 id="([^"]+)"', page)
    return {parts[i]: html.unescape(parts[i + 1]) for i in range(1, len(parts) - 1, 2)}


def test_every_subcommand_and_option_is_on_the_page(built_site):
    page = built_page(built_site, "cli.md")
    sections = _sections(page)
    parser = build_parser()
    commands = _subcommands(parser)
    assert {"info", "run", "bench", "pipeline", "serve"} <= commands.keys()
    missing = []
    for name, command in commands.items():
        section = sections.get(f"{parser.prog}-{name}")
        if section is None:
            missing.append(f"the section of {name}")
            continue
        missing += [
            f"{name} {argument}"
            for argument in _arguments(command)
            if f"<code>{html.escape(argument)}</code>" not in html.escape(section, quote=False)
            and f"<code>{argument}</code>" not in section
        ]
    top = html.unescape(page.split(f'<h2 id="{parser.prog}-', 1)[0])  # before the commands
    missing += [f"{parser.prog} {a}" for a in _arguments(parser) if f"<code>{a}</code>" not in top]
    assert not missing, f"missing from the CLI page: {missing}"


def test_the_section_reader_finds_options():
    """The check above can fail: an option absent from a section is seen as absent."""
    page = '<h1>x</h1><h2 id="atriva-infer-run">run</h2><td><code>--seed</code></td>'
    assert "<code>--seed</code>" in _sections(page)["atriva-infer-run"]
    assert "<code>--iterations</code>" not in _sections(page)["atriva-infer-run"]


def _command_lines(text: str) -> list[str]:
    """``atriva-infer ...`` command lines written in a page (code blocks, continued lines
    joined, and inline code)."""
    text = re.sub(r"\\\n\s*", " ", text)
    lines = re.findall(r"^\s*(?:\$\s*)?(atriva-infer\s[^\n`#]*)", text, re.M)
    return lines + re.findall(r"`(atriva-infer\s[^`]*)`", text)


def test_every_command_line_in_the_docs_uses_real_options():
    """A flag written anywhere in README.md or docs/ exists on the command it is given to."""
    parser = build_parser()
    commands = _subcommands(parser)
    wrong = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for line in _command_lines(page.read_text(encoding="utf-8")):
            words = line.split()
            command = commands.get(words[1]) if len(words) > 1 else None
            known = set(_arguments(command if command is not None else parser))
            for word in words[1:]:
                flag = word.split("=", 1)[0].strip("[]().,;'\"")
                if re.fullmatch(r"--?[a-z][a-z0-9-]*", flag) and flag not in known:
                    wrong.append(f"{page.relative_to(ROOT)}: {flag} in {line.strip()!r}")
    assert not wrong, "options the parser does not have:\n" + "\n".join(wrong)


def test_the_command_reader_sees_continued_lines_and_inline_code():
    page = "```sh\n$ atriva-infer bench m.onnx \\\n    --nope 3\n```\nUse `atriva-infer run --x`."
    assert [line.split()[-2:] for line in _command_lines(page)] == [["--nope", "3"], ["run", "--x"]]
