"""Write the CSV files pandas writes, and the arrays they hold, into tests/data/csv/.

Run with an environment that has pandas (``/work/torchenv/bin/python tools/make_csv_fixtures.py``);
the tests only need the committed output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "csv"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(4, 5)).round(6)
    labels = np.array([2, 0, 4, 1], dtype=np.int64)
    frame = pd.DataFrame(logits)
    series = pd.Series(labels)
    frame.to_csv(OUT / "logits_index.csv")
    frame.to_csv(OUT / "logits_noindex.csv", index=False)
    series.to_csv(OUT / "labels_index.csv")
    series.to_csv(OUT / "labels_noindex.csv", index=False)
    pd.Series(logits[:, 0]).to_csv(OUT / "column_noindex.csv", index=False)
    np.save(OUT / "logits.npy", logits)
    np.save(OUT / "labels.npy", labels)
    np.save(OUT / "column.npy", logits[:, 0])


if __name__ == "__main__":
    main()
