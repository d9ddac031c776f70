"""Interpretation engines: the evaluating ``Builder`` (``evaluator``) runs the
shared instruction semantics directly on Python values."""
