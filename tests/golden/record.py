"""Write the golden images: ``python -m tests.golden.record [CASE ...]`` (all cases by default).

Run only on purpose: a recorded image is what the tests hold the engine to.
"""

from __future__ import annotations

import sys

import torch

from tests.golden.cases import cases, golden_path, load


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    chosen = {k: v for k, v in cases().items() if not names or k in names}
    models: dict[str, object] = {}
    for case, (model_name, make) in chosen.items():
        model = models.setdefault(model_name, load(model_name))
        image = make(model)
        image.save(golden_path(case))
        print(case, image.size)


if __name__ == "__main__":
    main(sys.argv[1:])
