"""Jinja2 template and stylesheet of the HTML and PDF report.

Installed as ``snapcollect.report_templates`` (see pyproject.toml) so that
a plain ``pip install`` ships them; the files are edited here, at the top
of the repository.
"""
