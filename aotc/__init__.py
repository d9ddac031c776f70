"""aotc: ahead-of-time binary translation of Linux user-mode guests."""

__version__ = "0.1.0"
