"""A tabular NAS benchmark: every architecture of a small space, trained once per seed.

`benchmarks.tabular.generate` trains the 918 architectures of the digits space
(``python -m benchmarks.tabular.generate --workers 2``) into ``digits_table.jsonl``;
`benchmarks.tabular.table.TabularBenchmark` loads it so that a search can be replayed
in milliseconds: `query` returns a recorded validation accuracy of a random seed and
`regret` scores the reported architecture. (Nothing is imported here, so that both
modules run cleanly with ``python -m``.)
"""
