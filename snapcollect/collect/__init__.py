"""Collection: the only code that touches the live host or imports bcc."""
