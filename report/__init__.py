"""Assignment 1 report builder: results store, context layer and rendering.

Nothing in this package imports torch; training lives in ``experiments/``.
"""
