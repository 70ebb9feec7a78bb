"""Speaker-disjoint splits: one place for every held-out set and every cross-validation fold, so the
same person never sits on both sides (training experts, early stopping, stacking, the benchmark)."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from .errors import UsageError


def hold_out_groups(groups, share: float, seed: int, min_groups: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about `share` of the groups: (train indices, held-out indices). With fewer than
    `min_groups` groups, or share <= 0, nothing is held out."""
    from sklearn.model_selection import GroupShuffleSplit  # lazy: slow import; scoring loads this module, never splits

    groups = np.asarray(groups)
    n_groups = len(set(groups.tolist()))
    if share <= 0 or n_groups < min_groups:
        return np.arange(len(groups)), np.zeros(0, dtype=int)
    n_held = min(n_groups - 1, max(1, int(round(share * n_groups))))  # whole groups, at least one each side
    split = GroupShuffleSplit(n_splits=1, test_size=n_held, random_state=seed)
    train, held = next(split.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(held)


def group_folds(groups, n_splits: int, seed: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold splits (shuffled with `seed` when given), n_splits capped by the number of groups."""
    from sklearn.model_selection import GroupKFold  # lazy: slow import; scoring loads this module, never splits

    groups = np.asarray(groups)
    n = min(n_splits, len(set(groups)))
    if n < 2:
        raise UsageError(f"cross-validation needs at least 2 speakers, the labels have {len(set(groups))}")
    kfold = GroupKFold(n_splits=n) if seed is None else GroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return list(kfold.split(np.zeros(len(groups)), groups=groups))


def name_folds(groups, n_splits: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds dealt from the group names alone: the groups ordered by a checksum of their name and dealt round
    the folds in turn. Unlike `group_folds` (GroupKFold balances the folds' row counts), a group's fold does
    not depend on how many rows it has, so adding rows of the same groups (another corpus of the same
    speakers) leaves every fold as it was; adding a group may move others. Another `seed` orders the names by a
    hash seeded with it: another dealing of the same groups, just as stable (0 = the checksum's dealing)."""
    groups = np.asarray(groups).astype(str)

    def checksum(g: str) -> int:
        if not seed:
            return zlib.crc32(g.encode())
        # not a salted CRC: CRC is affine, so a common prefix XORs every name's CRC by one constant and can
        # leave the order, hence the folds, as they were
        return int.from_bytes(hashlib.blake2b(f"{seed}/{g}".encode(), digest_size=8).digest(), "big")

    names = sorted(set(groups.tolist()), key=lambda g: (checksum(g), g))
    n = min(n_splits, len(names))
    if n < 2:
        raise UsageError(f"cross-validation needs at least 2 speakers, the labels have {len(names)}")
    fold_of = {g: i % n for i, g in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups])
    rows = np.arange(len(groups))
    return [(rows[fold != f], rows[fold == f]) for f in range(n)]
