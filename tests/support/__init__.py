"""Helpers the tests share: plain functions, classes and constants (fixtures live in conftest
modules). Test modules import from here, never from conftest or from each other."""
