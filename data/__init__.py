"""gridplan.data: the bundled sample county (Baisha, Hainan) — see data/README.md.

Installed as the package ``gridplan.data`` so that ``gridplan demo`` finds the samples after a plain
``pip install .``. Code locates them with ``geo.samples.sample_dir("sample" | "sample_small")`` /
``geo.samples.sample_paths(...)`` (the one place that knows both the installed and the checkout layout).
"""
