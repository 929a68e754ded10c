"""Analysis: rates (sar equivalents), timeline and findings, from parsed data."""
