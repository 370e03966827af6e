"""Replies: is a drafted reply fit to send to the patient? (:mod:`.checker`).

Nothing here is wired into a cascade yet; :func:`check_reply` is the entry point.
"""

from shoal.policies.replies.checker import (
    CHECKS,
    CODES,
    DEFAULT_CLAIMS,
    SCAFFOLDING,
    ClaimMatcher,
    ClaimNegation,
    ClaimsPack,
    ExtraCheck,
    ForbiddenClaim,
    ReplyContext,
    ReplyFailure,
    ReplyLimits,
    ReplyVerdict,
    builtin_claims_names,
    check_reply,
    claims_matcher,
    claims_path,
    find_placeholders,
    load_claims,
)

__all__ = [
    "CHECKS",
    "CODES",
    "ClaimMatcher",
    "ClaimNegation",
    "ClaimsPack",
    "DEFAULT_CLAIMS",
    "ExtraCheck",
    "ForbiddenClaim",
    "ReplyContext",
    "ReplyFailure",
    "ReplyLimits",
    "ReplyVerdict",
    "SCAFFOLDING",
    "builtin_claims_names",
    "check_reply",
    "claims_matcher",
    "claims_path",
    "find_placeholders",
    "load_claims",
]
