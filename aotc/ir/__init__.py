"""The abstract builder that instruction semantics are written against."""
