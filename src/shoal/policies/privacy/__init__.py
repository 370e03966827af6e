"""Privacy: identifier packs, the detector that finds identifiers, the per-run vault of
pseudonyms, masking, and the egress re-scan of what leaves the machine.

presidio and spaCy are imported when a detector is first built, never on import.
"""

from shoal.policies.privacy.detector import (
    BACKEND,
    DEFAULT_PACK,
    Detector,
    Entity,
    adetector,
    detector,
    mask,
    offline_email_recognizer,
)
from shoal.policies.privacy.egress import mask_leftovers, scan_outbound, shared_detector
from shoal.policies.privacy.masking import (
    MODES,
    MaskedEntity,
    MaskResult,
    Mode,
    apply_mask,
    outside_pseudonyms,
    pseudonym_pattern,
)
from shoal.policies.privacy.packs import Pack, builtin_pack_names, load_pack
from shoal.policies.privacy.vault import Vault, unmask

__all__ = [
    "BACKEND",
    "DEFAULT_PACK",
    "Detector",
    "Entity",
    "MODES",
    "MaskResult",
    "MaskedEntity",
    "Mode",
    "Pack",
    "Vault",
    "adetector",
    "apply_mask",
    "builtin_pack_names",
    "detector",
    "load_pack",
    "mask",
    "mask_leftovers",
    "offline_email_recognizer",
    "outside_pseudonyms",
    "pseudonym_pattern",
    "scan_outbound",
    "shared_detector",
    "unmask",
]
