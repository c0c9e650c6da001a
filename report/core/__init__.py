"""The torch-free base layer that ``experiments/``, the context layer and the CLI all stand on.

errors (what a user can fix), config (profiles and ``--set``), manifest (what each experiment stores),
store (parquet results), fingerprint and freshness (is a stored result current?), atomic (safe writes).
Nothing here imports torch, pandas is imported only where a table is read or written.
"""
