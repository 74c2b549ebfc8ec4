"""The main module a pytest-xdist worker names (tests/conftest.py): empty on purpose.

A process pool started with spawn or forkserver runs the parent's main module again in each child
(as ``__mp_main__``); for a test worker that is this file, which does nothing.
"""
