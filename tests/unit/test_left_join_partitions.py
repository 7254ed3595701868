"""``doa check`` refuses a join whose two inputs would not put a pair on one partition.

A join pairs records within one input partition. Claims keyed by ``claim_id`` and policies
keyed by ``policy_id``, four partitions each, joined on ``policy_id``: a claim lands where its
claim id hashes, its policy where the policy id does, and the two never meet; ``doa check``
said ok. Inputs of different partition counts were refused, without saying what to change.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from doa.cli.app import cli
from doa.topology.loader import load_topology

CLAIM = {"type": "record", "name": "Claim", "namespace": "ins", "fields": [
    {"name": "claim_id", "type": "string"}, {"name": "policy_id", "type": "string"},
    {"name": "amount", "type": "double"}]}
POLICY = {"type": "record", "name": "Policy", "namespace": "ins", "fields": [
    {"name": "policy_id", "type": "string"}, {"name": "holder", "type": "string"}]}

TOPOLOGY = '''
from doa import Topology

topology = Topology("insurance", schemas="schemas")
topology.stream("claims", schema="ins.Claim", key={claims_key!r}, partitions={claims})
topology.stream("policies", schema="ins.Policy", key={policies_key!r}, partitions={policies})
topology.stream("assessed", schema="ins.Claim", key="policy_id", partitions={policies})
topology.join("assess", left="claims", right="policies", on="policy_id", within_ms=1000,
              writes="assessed")
'''


def project(tmp_path: Path, claims_key: str | None, policies_key: str | None,
            claims: int = 4, policies: int = 4) -> Path:
    (tmp_path / "schemas").mkdir(parents=True, exist_ok=True)
    (tmp_path / "schemas" / "claim.avsc").write_text(json.dumps(CLAIM))
    (tmp_path / "schemas" / "policy.avsc").write_text(json.dumps(POLICY))
    path = tmp_path / "insurance.py"
    path.write_text(TOPOLOGY.format(claims_key=claims_key, policies_key=policies_key,
                                    claims=claims, policies=policies))
    return path


def test_inputs_keyed_by_different_fields_are_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(project(tmp_path, "claim_id", "policy_id"))])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "problem: join 'assess': its left stream 'claims' is keyed by 'claim_id' and its right "
        "stream 'policies' by 'policy_id' (4 partitions each), joined on 'policy_id': a left "
        "and a right record with equal keys land on different partitions and never join; key "
        "'claims' by 'policy_id'"), line


def test_other_partition_counts_name_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(project(tmp_path, "policy_id", "policy_id",
                                                           claims=2))])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "problem: node 'assess' reads streams with different partition counts (claims: 2, "
        "policies: 4); co-partitioned inputs must have equal counts: records with equal keys "
        "land on different partitions and never meet; declare 'claims' with partitions=4"), line


def test_what_puts_a_pair_on_one_partition_passes(tmp_path: Path) -> None:
    def found(name: str, claims_key: str | None, policies_key: str | None,
              partitions: int = 4) -> list[str]:
        return load_topology(str(project(tmp_path / name, claims_key, policies_key,
                                         partitions, partitions))).validate()

    assert found("by_join_key", "policy_id", "policy_id") == []
    assert found("one_partition", "claim_id", "policy_id", 1) == []
    assert found("unkeyed_claims", None, "policy_id") == []
    assert len(found("as_declared", "claim_id", "policy_id")) == 1
