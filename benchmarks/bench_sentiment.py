"""Sentiment scoring throughput: ``python benchmarks/bench_sentiment.py``.

The same as ``crisiswatch bench-sentiment``: mentions per second per core at
batch sizes 1, 100 and 1,000, written into the sentiment section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

from pathlib import Path

from streams.sentiment.bench import run_benchmark, write_section


def main() -> None:
    report = run_benchmark()
    print(report)
    write_section(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", report)


if __name__ == "__main__":
    main()
