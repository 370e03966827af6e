"""The learning loop: retrain a node on its escalations, shadow the candidate, promote it only
through a gate that never trades a critical label's recall.

- :mod:`~shoal.learning.data`: a node's labelled inputs, the ledger's training rows;
- :mod:`~shoal.learning.learn`: ``shoal learn``, a versioned candidate with its lineage;
- :mod:`~shoal.learning.evaluate`: a version on the frozen split, as the node runs it;
- :mod:`~shoal.learning.shadow`: a shadow version against the champion on live traffic;
- :mod:`~shoal.learning.gate`: the promotion gate;
- :mod:`~shoal.learning.promote`: promote, roll back, start and stop a shadow (audited).

The state (versions, champion, shadow records) lives in the escalation store
(:mod:`shoal.policies.escalation.model_registry`); a running graph follows it
(:meth:`shoal.Graph.refresh_models`).
"""

from shoal.learning.data import LedgerRows, NodeData, concat_node_data, ledger_rows, node_data
from shoal.learning.evaluate import EvalMetrics, evaluate_version
from shoal.learning.gate import GateCheck, GateResult, gate
from shoal.learning.learn import Candidate, NodeSetup, learn, node_setup
from shoal.learning.promote import Promotion, promote, rollback, start_shadow, stop_shadow
from shoal.learning.shadow import ShadowStats, shadow_stats

__all__ = [
    "Candidate",
    "EvalMetrics",
    "GateCheck",
    "GateResult",
    "LedgerRows",
    "NodeData",
    "NodeSetup",
    "Promotion",
    "ShadowStats",
    "concat_node_data",
    "evaluate_version",
    "gate",
    "learn",
    "ledger_rows",
    "node_data",
    "node_setup",
    "promote",
    "rollback",
    "shadow_stats",
    "start_shadow",
    "stop_shadow",
]
