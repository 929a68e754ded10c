"""Rendering: a format-neutral Report document to Markdown, HTML, PDF and JSON."""
