"""mkdocs hooks: pages made from the repository at build time.

- ``tutorials/NN_name.py`` become ``tutorials/NN_name.md``: the module docstring is the introduction, each block
  of top-level ``#`` comments a paragraph, the code between them a Python block (the scripts run in the tests, so
  the pages show code that works).
- ``reference/<package>.md``: one page per package of ``tcomp`` rendered by mkdocstrings from the docstrings.
- ``cli.md``: every command's ``--help``, generated from the parser the ``tcomp`` command uses.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("te", "schedule", "ir", "arith", "transform", "codegen", "runtime", "backend", "ops", "graph", "autotune",
            "cli")


def _title(text: str) -> str:
    return text.strip().splitlines()[0].rstrip(".")


def tutorial_page(source: str) -> str:
    """A tutorial script as Markdown (see the module docstring)."""
    module = ast.parse(source)
    docstring = ast.get_docstring(module) or ""
    lines = source.splitlines()
    start = module.body[0].end_lineno if docstring else 0
    head, _, rest = docstring.partition("\n")
    parts = [f"# {head.rstrip('.')}", "", rest.strip(), ""]
    code: list[str] = []
    prose: list[str] = []

    def flush_code() -> None:
        while code and not code[-1].strip():
            code.pop()
        while code and not code[0].strip():
            code.pop(0)
        if code:
            parts.extend(["```python", *code, "```", ""])
        code.clear()

    def flush_prose() -> None:
        if prose:
            parts.extend([" ".join(prose), ""])
        prose.clear()

    for line in lines[start:]:
        if line.startswith("#"):
            flush_code()
            prose.append(line.lstrip("#").strip().replace("[", "\\[").replace("]", "\\]"))
        else:
            flush_prose()
            code.append(line)
    flush_prose()
    flush_code()
    return "\n".join(parts)


def tutorial_pages() -> dict[str, str]:
    pages = {}
    index = ["# Tutorials", "", "Runnable scripts in `tutorials/`, executed by the test suite.", ""]
    for path in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        source = path.read_text()
        pages[f"tutorials/{path.stem}.md"] = tutorial_page(source)
        title = _title(ast.get_docstring(ast.parse(source)) or path.stem)
        index.append(f"- [{title}]({path.stem}.md)")
    pages["tutorials/index.md"] = "\n".join(index) + "\n"
    return pages


def reference_pages() -> dict[str, str]:
    import importlib

    pages = {}
    index = ["# API reference", "", "Generated from the docstrings. The public API: `tcomp` itself, "
             "then one page per package.", "", "- [tcomp](tcomp.md)"]
    pages["reference/tcomp.md"] = "# tcomp\n\n::: tcomp\n    options:\n      show_submodules: false\n\n" \
                                  "::: tcomp.target\n\n::: tcomp.config\n"
    for name in PACKAGES:
        package = importlib.import_module(f"tcomp.{name}")
        summary = _title(package.__doc__ or name)
        pages[f"reference/{name}.md"] = f"# tcomp.{name}\n\n::: tcomp.{name}\n"
        index.append(f"- [tcomp.{name}]({name}.md): {summary}")
    pages["reference/index.md"] = "\n".join(index) + "\n"
    return pages


def cli_page() -> str:
    from tcomp.cli import COMMAND_MODULES, build_parser

    parser = build_parser()
    out = ["# Command line", "", "Every command of `tcomp`, as `--help` prints it.", ""]
    sections = [("tcomp", [])] + [(f"tcomp {name}", [name]) for name, _, _ in COMMAND_MODULES]
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        for title, argv in sections:
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
                parser.parse_args([*argv, "--help"])
            out += [f"## {title}", "", "```text", text.getvalue().rstrip(), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out)


def _section(pages: dict[str, str], folder: str) -> list[object]:
    """The nav entries of a generated folder: its index, then its pages in order, titled by their first heading."""
    entries: list[object] = [f"{folder}/index.md"]
    for uri, content in sorted(pages.items()):
        if uri.startswith(folder + "/") and not uri.endswith("index.md"):
            entries.append({content.splitlines()[0].lstrip("# ").strip(): uri})
    return entries


def on_config(config: dict) -> dict:
    """Nav entries pointing at a generated folder's index (``tutorials/index.md``) become that folder's pages."""
    pages = {**tutorial_pages(), **reference_pages()}
    for position, item in enumerate(config["nav"]):
        if isinstance(item, dict):
            (title, target), = item.items()
            if isinstance(target, str) and target.endswith("/index.md") and target in pages:
                config["nav"][position] = {title: _section(pages, target.rsplit("/", 1)[0])}
    return config


def on_files(files: Files, config: dict) -> Files:
    pages = {**tutorial_pages(), **reference_pages(), "cli.md": cli_page()}
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    return files

