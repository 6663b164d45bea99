"""The lab's iptables rules (pure: the rule list, not applying it)."""

from __future__ import annotations

from pgops.lab.firewall import rules

LAB, SUBNET, MIRROR = "demo", "172.30.0.0/24", "151.101.2.132"


def comment_of(rule: list[str]) -> str:
    i = rule.index("--comment")
    assert rule[i - 2 : i] == ["-m", "comment"]
    return rule[i + 1]


def test_every_rule_tagged_with_lab():
    rs = rules(LAB, SUBNET, MIRROR)
    assert rs
    assert all(comment_of(r) == "pgops-lab:demo" for r in rs)
    assert all(comment_of(r) == "pgops-lab:other" for r in rules("other", SUBNET, MIRROR))


def test_lab_to_lab_accept_first():
    first = rules(LAB, SUBNET, MIRROR)[0]
    assert first[first.index("-s") + 1] == SUBNET
    assert first[first.index("-d") + 1] == SUBNET
    assert first[-2:] == ["-j", "ACCEPT"]


def test_drop_for_subnet_last():
    rs = rules(LAB, SUBNET, MIRROR)
    assert rs[-1][-2:] == ["-j", "DROP"]
    assert SUBNET in rs[-1]
    # Every ACCEPT comes before every DROP (first match wins).
    targets = [r[-1] for r in rs]
    assert targets == sorted(targets)  # "ACCEPT" < "DROP"
    assert targets.count("DROP") >= 1


def test_both_directions_dropped():
    drops = [r for r in rules(LAB, SUBNET, MIRROR) if r[-1] == "DROP"]
    assert any(r[:2] == ["-s", SUBNET] for r in drops)
    assert any(r[:2] == ["-d", SUBNET] for r in drops)


def test_mirror_reachable_only_on_http_ports():
    mirror = [r for r in rules(LAB, SUBNET, MIRROR) if f"{MIRROR}/32" in r]
    assert len(mirror) == 1
    r = mirror[0]
    assert r[r.index("--dports") + 1] == "80,443"
    assert r[r.index("-p") + 1] == "tcp"
    assert r[-1] == "ACCEPT"


def test_replies_accepted_before_drop():
    rs = rules(LAB, SUBNET, MIRROR)
    est = next(i for i, r in enumerate(rs) if "ESTABLISHED,RELATED" in r)
    first_drop = next(i for i, r in enumerate(rs) if r[-1] == "DROP")
    assert est < first_drop
