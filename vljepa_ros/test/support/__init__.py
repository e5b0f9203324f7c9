"""Fixtures and helpers shared by the tests; test data under data/."""
