"""mkdocs hook: put the repository files the docs link to into the site, so strict mode checks them.

The docs link to result files and the changelog with absolute, repository-relative links
(``/analysis/results/powered/powered_figure.png``, ``/CHANGELOG.md``): GitHub resolves them from
the repository root, and ``validation.links.absolute_links: relative_to_docs`` in ``mkdocs.yml``
makes mkdocs resolve them against the site's files. This hook adds those files to the site under
the same paths (nothing is copied into ``docs/``), so a link to a file that does not exist is a
``not_found`` warning, which ``mkdocs build --strict`` turns into a failure. Markdown files among
them become pages outside the navigation.
"""

from __future__ import annotations

import os

from mkdocs.structure.files import File, Files, InclusionLevel

# Repository paths (files or folders) published with the docs.
REPO_PATHS = ("analysis/results", "CHANGELOG.md")
# Never published: build outputs that are not committed (see .gitignore).
SKIP_SUFFIXES = (".html",)


def _walk(root: str, rel: str):
    path = os.path.join(root, rel)
    if os.path.isfile(path):
        yield rel
        return
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                continue
            yield os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")


def on_files(files: Files, config) -> Files:
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    for rel in REPO_PATHS:
        for src_uri in _walk(root, rel):
            if files.get_file_from_path(src_uri) is None:
                files.append(File.generated(config, src_uri,
                                            abs_src_path=os.path.join(root, src_uri),
                                            inclusion=InclusionLevel.NOT_IN_NAV))
    return files
