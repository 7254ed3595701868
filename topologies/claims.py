"""Example topology: insurance claims -> joined with their policy -> a payout model whose
versions are published as data, compared on delayed settlements, and promoted.

A claims service publishes claims and policies; weeks later the settlement of each claim
(what was finally paid). The story, as ``tests/integration/test_claims.py`` runs it:

1. ``assess`` (a keyed join) pairs each claim with its policy (same ``policy_id``, within
   :data:`WINDOW_MS` of event time);
2. ``payout`` (a model node) starts with a rule (:class:`Rule`: the claimed amount less the
   deductible, cut for old vehicles); every prediction carries the version that made it;
3. once settlements come in, a scikit-learn model is trained on the assessed claims and
   their settlements collected from the streams, and deployed with
   ``doa model publish topologies/claims.py payout model.joblib``;
4. a model retrained on more claims is published with ``--candidate``: it scores the same
   claims into ``payouts.shadow`` only; both are scored on the same settlements (mean
   absolute error), ``doa model compare`` shows them side by side, and the
   :data:`PROMOTE` policy promotes the candidate when it is better by the margin after
   that many settlements (``doa model promote`` does it by hand).

:func:`claims` and :func:`settlement` make seeded data whose true payout depends on the
policy and the claim in ways the rule does not know, so a trained model can beat it.

Examples
--------
>>> sorted(topology.nodes), topology.nodes["payout"].reads
(['assess', 'payout'], ('payout.versions', 'assessed_claims', 'settlements'))
>>> policy, claim = next(claims(1, seed=3))
>>> settlement(policy, claim)["claim_id"], claim["policy_id"] == policy["policy_id"]
('c0', True)
>>> float(Rule().predict_batch(np.array([[2000.0, 3.0, 0.0, 500.0, 40.0]]))[0])
1500.0
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
from river import metrics

from doa import Topology
from doa.model import Labels, Promote

FEATURES = ["amount", "vehicle_age", "prior_claims", "deductible", "holder_age"]
WINDOW_MS = 30 * 24 * 3600 * 1000  # a claim joins a policy published within 30 days of it
PROMOTE = Promote(margin=10.0, after_labels=300)  # 10 currency units of MAE, 300 settlements


class Rule:
    """The payout rule before any model: the amount less the deductible, 40 % less for
    vehicles over 10 years old (columns in :data:`FEATURES` order)."""

    def predict_batch(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        payout = np.maximum(X[:, 0] - X[:, 3], 0.0)
        out: np.ndarray[Any, Any] = np.where(X[:, 1] > 10, payout * 0.6, payout)
        return out


def claims(n: int, seed: int = 7, start: int = 0) -> Iterator[tuple[dict[str, Any],
                                                                   dict[str, Any]]]:
    """``n`` (policy, claim) pairs, claim ids ``start``, ``start + 1``, ..."""
    rng = random.Random(seed * 1_000_003 + start)
    for i in range(start, start + n):
        policy = {"policy_id": f"p{i}", "deductible": float(rng.choice((0, 250, 500, 1000))),
                  "holder_age": float(rng.randint(18, 80))}
        claim = {"claim_id": f"c{i}", "policy_id": f"p{i}",
                 "amount": round(rng.uniform(200, 10_000), 2),
                 "vehicle_age": float(rng.randint(0, 20)),
                 "prior_claims": float(rng.choice((0, 0, 0, 1, 1, 2, 4)))}
        yield policy, claim


def settlement(policy: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    """What the claim is settled for: the rule's idea, but frequent claimants and young
    drivers get less, and old vehicles are depreciated smoothly (deterministic)."""
    base = max(claim["amount"] - policy["deductible"], 0.0)
    factor = (1 - 0.03 * claim["vehicle_age"]) * (0.85 ** claim["prior_claims"])
    factor *= 0.8 if policy["holder_age"] < 25 else 1.0
    return {"claim_id": claim["claim_id"], "paid": round(base * max(factor, 0.2), 2)}


topology = Topology("claims", dead_letters="claims.dlq")
claims_in = topology.stream("claims", schema="Claim", key="policy_id")
policies = topology.stream("policies", schema="Policy", key="policy_id")
assessed = topology.stream("assessed_claims", schema="AssessedClaim", key="policy_id")
settlements = topology.stream("settlements", schema="Settlement", key="claim_id")
payouts = topology.stream("payouts", schema="doa.Prediction", key="key")
shadow = topology.stream("payouts.shadow", schema="doa.Prediction", key="key")
for name, schema in (("payout.events", "doa.ModelEvent"), ("payout.outcomes", "doa.Outcome"),
                     ("payout.metrics", "doa.Metric")):
    topology.stream(name, schema=schema)
topology.stream("claims.unmatched", schema="doa.UnmatchedLabel", shared=True)  # both report

topology.join("assess", left=claims_in, right=policies, on="policy_id", within_ms=WINDOW_MS,
              writes=assessed, unmatched="claims.unmatched")
topology.model("payout", reads=assessed, writes=payouts, model=Rule(), features=FEATURES,
               join="claim_id", key="policy_id", shadow=shadow, models="payout.events",
               labels=Labels("settlements", label="paid", metric=metrics.MAE(),  # type: ignore[no-untyped-call]
                             outcomes="payout.outcomes", metrics="payout.metrics",
                             unmatched="claims.unmatched", every=100),
               promote_when=PROMOTE)
