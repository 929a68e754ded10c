"""snapcollect: collect a bounded memory-incident bundle, render it offline."""

__version__ = "0.1.0"
