"""How a shadow version did beside the champion on live traffic.

Shadow records hold both versions' labels for every shadowed run (never the text); the ledger
holds the planner's or a person's label for the runs that escalated. Joined on the run, they give
each version's accuracy on the records someone labelled, and the agreement on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.policies.escalation import LedgerStore, ModelRegistry

__all__ = ["ShadowStats", "shadow_stats"]


@dataclass(frozen=True)
class ShadowStats:
    version: str
    champions: list[str] = field(default_factory=list)
    """The champion versions it ran beside."""
    n: int = 0
    agreement: float | None = None
    """Share of shadowed runs where both gave the same label."""
    labelled: int = 0
    """Shadowed runs with a planner's or a person's label."""
    human: int = 0
    champion_accuracy: float | None = None
    candidate_accuracy: float | None = None

    def as_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"version": self.version, "champions": self.champions, "n": self.n,
                "agreement": r(self.agreement), "labelled": self.labelled, "human": self.human,
                "champion_accuracy": r(self.champion_accuracy),
                "candidate_accuracy": r(self.candidate_accuracy)}


def shadow_stats(registry: ModelRegistry, ledger: LedgerStore, graph: str, node: str,
                 version: str) -> ShadowStats:
    """``version``'s shadow records on ``node``, judged by the ledger's labels."""
    records = registry.shadow_records(graph, node, version)
    if not records:
        return ShadowStats(version=version)
    truth = {e.run_id: (e.label, e.source) for e in ledger.entries(graph=graph, node=node)
             if e.label is not None}
    labelled = [(r, truth[r.run_id]) for r in records if r.run_id in truth]
    agree = sum(r.champion_label == r.candidate_label for r in records)
    n_lab = len(labelled)
    return ShadowStats(
        version=version, champions=sorted({r.champion_version for r in records}),
        n=len(records), agreement=agree / len(records), labelled=n_lab,
        human=sum(src == "human" for _, (_, src) in labelled),
        champion_accuracy=(sum(r.champion_label == lab for r, (lab, _) in labelled) / n_lab
                           if n_lab else None),
        candidate_accuracy=(sum(r.candidate_label == lab for r, (lab, _) in labelled) / n_lab
                            if n_lab else None))
