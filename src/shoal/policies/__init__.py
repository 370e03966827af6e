"""What the runtime enforces, each in a subpackage named for what it holds.

- :mod:`shoal.policies.privacy`: identifier packs, the detector, the per-run vault, masking, the
  egress re-scan;
- :mod:`shoal.policies.scope`: one run's own state (vault, spending), made and closed by the
  runtime;
- :mod:`shoal.policies.escalation`: when a node goes to the planner (rules, the decision), the
  escalator, the remote-model guard, budgets, circuit breaker, outbox, calibration math;
- :mod:`shoal.policies.audit`: the hash-chained decision log.

This package imports none of them, so importing one does not load the others.
"""
