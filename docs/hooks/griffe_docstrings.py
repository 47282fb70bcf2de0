"""griffe extension: render the package's reStructuredText-flavoured docstrings as Markdown.

The docstrings are written for ``help()`` and doctest: ``>>>`` examples, Sphinx roles such as
``:func:`evaluate```. mkdocstrings renders docstrings as Markdown, where a doctest line such as
``>>> results["methods"]["caa"]`` reads as a reference link (and mkdocs-autorefs warns that the
target ``"caa"`` does not exist). This extension changes only the text the docs site renders,
never the package: doctest blocks become fenced ``pycon`` code blocks, and Sphinx roles become
inline code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|obj|exc|const|term|ref):`~?([^`]+)`")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")  # a Google-style section title
_FENCE = re.compile(r"^\s*(```|~~~)")


def _fence_doctests(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        block = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            block.append(lines[i][len(indent):])
            i += 1
        if out and out[-1].strip() and not _SECTION.match(out[-1]):
            out.append("")
        out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


def convert(text: str) -> str:
    """The Markdown text of one docstring."""
    return _fence_doctests(_ROLE.sub(lambda m: f"`{m.group(1)}`", text))


class RstToMarkdown(griffe.Extension):
    """Convert each docstring once, when griffe loads its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
