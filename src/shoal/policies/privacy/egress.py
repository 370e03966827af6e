"""The re-scan of what is about to leave the machine.

Text that passed the masker is scanned again with the pack's detector before it is sent to a
remote model: an identifier outside a pseudonym means the masker missed it, and the call must not
happen. A local model's draft never passed the masker: what the scan finds in it is masked with
the run's vault instead (:func:`mask_leftovers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from shoal.policies.privacy.detector import Detector, adetector
from shoal.policies.privacy.masking import apply_mask, outside_pseudonyms
from shoal.policies.privacy.vault import Vault

__all__ = ["mask_leftovers", "scan_outbound", "shared_detector"]


async def shared_detector(pack: str) -> Detector:
    """The process's detector for ``pack``. Building it loads spaCy once per process: in the
    model pool, like every blocking model load."""
    return await adetector(pack)


async def scan_outbound(texts: Iterable[str], pack: str) -> dict[str, int]:
    """Identifier types (and counts) found in the clear in ``texts``; empty when they may go."""
    found_detector = await shared_detector(pack)
    types: Counter[str] = Counter()
    for text in texts:
        if not text.strip():
            continue
        found = await found_detector.ascan(text)
        for hit in outside_pseudonyms(text, found, found_detector.pack):
            types[hit.type] += 1
    return dict(types)


async def mask_leftovers(text: str, pack: str, vault: Vault) -> str:
    """Mask what a scan finds outside pseudonyms, with the run's vault (so ``[NAME_1]`` stays
    ``[NAME_1]``). For texts a local model wrote from masked input, such as a draft about to go
    to the planner: it should hold no identifier, and if it copied or invented one, it goes out
    masked rather than not at all."""
    found_detector = await shared_detector(pack)
    found = outside_pseudonyms(text, await found_detector.ascan(text), found_detector.pack)
    if not found:
        return text
    return apply_mask(text, found, vault=vault).masked
