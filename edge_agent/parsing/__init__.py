"""Pure parsers: bytes or text in, frozen dataclasses out; no I/O, clock or logging."""
