"""Replies: is a drafted reply fit to send to the patient?

:func:`check_reply` (:mod:`.checker`) runs the checks; :class:`OnTopic` (:mod:`.on_topic`) adds
the MiniLM on-topic check. The compliance checker's ``reply_fit`` check and the responder's
personal sentence use both.
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
from shoal.policies.replies.on_topic import OnTopic, OnTopicFloor, OnTopicSpec, choose_floor

__all__ = [
    "CHECKS",
    "CODES",
    "ClaimMatcher",
    "ClaimNegation",
    "ClaimsPack",
    "DEFAULT_CLAIMS",
    "ExtraCheck",
    "ForbiddenClaim",
    "OnTopic",
    "OnTopicFloor",
    "OnTopicSpec",
    "ReplyContext",
    "ReplyFailure",
    "ReplyLimits",
    "ReplyVerdict",
    "SCAFFOLDING",
    "builtin_claims_names",
    "check_reply",
    "choose_floor",
    "claims_matcher",
    "claims_path",
    "find_placeholders",
    "load_claims",
]
