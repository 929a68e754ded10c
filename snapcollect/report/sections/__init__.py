"""Report sections, one module per classic view.

Each module turns the analysed ``Dataset`` into ``Section`` objects of
``report.model`` (tables, charts, paragraphs) and never reads raw text.
``report.build`` puts them in order.
"""
