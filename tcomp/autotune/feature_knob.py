"""The knob encoding of a config: the cost model's features when it is asked to learn from the knobs themselves
(``FeatureKind.KNOB``, the ``xgb_knob`` tuner) rather than from the loop IR they produce.

Each knob gives numbers in its space's order: log2 of a split's factors, a permutation's positions, one-hots of
each axis's annotation, an option's value (a string one as a ``stable_bucket``), each with a name for reports.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from tcomp.autotune.space import AnnotateEntity, Annotation, ConfigEntity, OtherOptionEntity, ReorderEntity, SplitEntity


def stable_bucket(text: str, buckets: int = 97) -> float:
    """A number for a string knob value, the same in every process (``hash(str)`` is salted per process, which
    made models trained in different processes disagree)."""
    return float(zlib.crc32(text.encode("utf-8", "surrogatepass")) % buckets)


def _knob_entries(config: ConfigEntity) -> list[tuple[str, float]]:
    """The knob encoding of ``config``, each number with its name: log2 of a split's factors, a permutation's
    positions, one-hots of each axis's annotation, an option's value (a string one as a ``stable_bucket``)."""
    entries: list[tuple[str, float]] = []
    for name, entity in config.choices.items():
        if isinstance(entity, SplitEntity):
            entries += [(f"{name}.factor{k}", math.log2(max(1, f))) for k, f in enumerate(entity.size[1:], start=1)]
        elif isinstance(entity, ReorderEntity):
            entries += [(f"{name}.position{k}", float(p)) for k, p in enumerate(entity.perm)]
        elif isinstance(entity, AnnotateEntity):
            for axis, ann in enumerate(entity.anns):
                entries += [(f"{name}.axis{axis}.{choice.value}", 1.0 if ann is choice else 0.0)
                            for choice in Annotation]
        elif isinstance(entity, OtherOptionEntity):
            val = entity.val
            entries.append((name, float(val) if isinstance(val, (int, float)) else stable_bucket(str(val))))
    return entries


def knob_features(config: ConfigEntity) -> np.ndarray:
    return np.asarray([value for _, value in _knob_entries(config)], dtype=np.float32)


def knob_feature_names(config: ConfigEntity) -> list[str]:
    """A name for each entry of ``knob_features(config)`` (``knob.tile_i.factor1``), the same for every config of
    one space."""
    return [f"knob.{name}" for name, _ in _knob_entries(config)]
