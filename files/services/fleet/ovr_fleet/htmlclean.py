"""Report HTML from a node, cleaned before the cloud stores or serves it (docs/adr/0009-report-html-sandbox.md).

The page is written anew from what the parser read: only tags and attributes on the allowlists
below come out, text and attribute values escaped again. So nothing in the output can run,
submit, refresh, re-base or frame, whatever the input does to confuse a parser — every tag in
it is one this module wrote. The allowlist is what the edge's own report (ovr_events
reports.render_html) uses; anything else is removed and named, so the worker can count it.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

KEEP = frozenset({
    "html", "head", "body", "title", "meta", "style", "h1", "h2", "h3", "h4", "h5", "h6", "p", "div", "span", "section",
    "article", "header", "footer", "main", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
    "ul", "ol", "li", "dl", "dt", "dd", "b", "i", "em", "strong", "small", "sub", "sup", "br", "hr", "figure", "figcaption",
    "img", "pre", "code", "blockquote", "abbr", "time",
})
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"})
# Removed with everything inside them (non-void only: a void element has no inside).
DROP_INSIDE = frozenset({"script", "iframe", "frame", "frameset", "object", "applet", "noscript", "noembed", "noframes",
                         "template", "svg", "math", "textarea", "select", "canvas", "audio", "video", "picture", "xmp"})
ATTRS = frozenset({"class", "id", "style", "lang", "dir", "title", "alt", "width", "height", "colspan", "rowspan", "scope",
                   "loading", "datetime"})
META_ATTRS = frozenset({"charset", "name", "content"})
DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
# CSS that could fetch something or that would end the <style> element early.
BAD_CSS = re.compile(r"url\s*\(|@import|expression\s*\(|javascript:|<", re.IGNORECASE)


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.removed: list[str] = []
        self.skip = 0  # depth inside a DROP_INSIDE element
        self.in_style = False

    def note(self, what: str) -> None:
        if what not in self.removed:
            self.removed.append(what)

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.out.append("<!doctype html>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip:
            self.skip += tag in DROP_INSIDE
            return
        if tag in DROP_INSIDE:
            self.note(f"<{tag}>")
            self.skip = 1
            return
        if tag == "meta" and any(name == "http-equiv" for name, _ in attrs):
            self.note("<meta http-equiv>")
            return
        if tag not in KEEP:
            self.note(f"<{tag}>")
            return
        if tag == "meta" and not any(name in ("charset", "name") for name, _ in attrs):
            return
        kept = []
        for name, value in attrs:
            if (name in META_ATTRS) if tag == "meta" else (name in ATTRS):
                if name == "style" and value and BAD_CSS.search(value):
                    self.note("style= with url(), @import or expression()")
                    continue
                kept.append(f" {name}" if value is None else f' {name}="{html.escape(value, quote=True)}"')
            elif tag == "img" and name == "src":
                if value and DATA_IMAGE.match(value):
                    kept.append(f' src="{html.escape(value, quote=True)}"')
                else:
                    self.note("img src (not a data: image)")
            else:
                self.note(f"{name}=")
        self.out.append(f"<{tag}{''.join(kept)}>")
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            self.skip -= tag in DROP_INSIDE
            return
        if tag in KEEP and tag not in VOID:
            self.out.append(f"</{tag}>")
        if tag == "style":
            self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_style:
            if BAD_CSS.search(data):
                self.note("<style> with url(), @import or expression()")
            else:
                self.out.append(data)
            return
        self.out.append(html.escape(data, quote=False))

    # Comments, processing instructions and other declarations are left out without a word.
    def handle_comment(self, data: str) -> None:
        pass

    def handle_pi(self, data: str) -> None:
        pass

    def unknown_decl(self, data: str) -> None:
        pass


def clean_html(page: str) -> tuple[str, list[str]]:
    """The page with only allowlisted tags and attributes, and what was removed (first seen first)."""
    cleaner = _Cleaner()
    cleaner.feed(page)
    cleaner.close()
    return "".join(cleaner.out), cleaner.removed
