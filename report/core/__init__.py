"""The torch-free base layer that ``experiments/``, the context layer and the CLI all stand on.

errors (what a user can fix), config (profiles and ``--set``), manifest (what each experiment stores),
store (immutable run folders behind an atomic pointer), fingerprint and freshness (is a stored result
current?), bundle (results carried between machines), settings (``report.toml``), atomic (safe writes).
Nothing here imports torch; pandas is imported only where a table is read or written.
"""
