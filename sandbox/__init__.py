"""mail-sandbox: the whole journey of an email, on one laptop."""

__version__ = "0.1.0"
