"""A Sphinx extension that puts a "synthetic data" banner on every results page.

Every page of the book's per-city results (``results/<city>/...``, the executed
notebooks, and ``_generated/summary_<city>``, the summary that opens each city's
chapter) shows these numbers as if they were a municipality's. They are not: the
whole compendium runs on a synthetic world. The banner says so at the top of each
such page, whatever the notebook template or generated page contains, because
it is added to the parsed page (the ``doctree-read`` event) rather than written
into each source.

Enabled in ``book/_config.yml`` (``sphinx.config.extensions``).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes

#: the banner's title and text (the page shows "Synthetic data" above the text)
TITLE = "Synthetic data"
BANNER = "These results are from a synthetic world, not from any municipality."
#: the CSS class of the banner's admonition (the built-HTML test looks for it)
CSS_CLASS = "synthetic-data-banner"
#: documents (Sphinx docnames) that get the banner
PREFIXES = ("results/", "_generated/summary_")


def is_results_page(docname: str) -> bool:
    return docname.startswith(PREFIXES)


def banner_node() -> nodes.Element:
    note = nodes.admonition(classes=["warning", CSS_CLASS])
    note += nodes.title(text=TITLE)
    note += nodes.paragraph(text=BANNER)
    return note


def add_banner(doctree: nodes.document, docname: str) -> bool:
    """Insert the banner after the page's first heading (at the top when the
    page has none); return whether the page got one."""
    if not is_results_page(docname):
        return False
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, banner_node())
        return True
    title = next((i for i, c in enumerate(section.children) if isinstance(c, nodes.title)), -1)
    section.insert(title + 1, banner_node())
    return True


def _on_doctree_read(app: Any, doctree: nodes.document) -> None:
    add_banner(doctree, app.env.docname)


def setup(app: Any) -> dict[str, Any]:
    app.connect("doctree-read", _on_doctree_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
