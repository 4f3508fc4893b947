"""Local, offline, bilingual question answering over documents, with verified citations."""

__version__ = "0.1.0"
