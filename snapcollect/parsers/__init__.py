"""Parsers: pure functions from raw kernel text to typed, frozen records.

One module per kernel interface; no file I/O, no globals. Field names are
the kernel's; units are in the names where the kernel's name has none.
"""
