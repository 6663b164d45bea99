"""Deterministic sample data for the multi-tenant schema: same input, same rows, every run.

Embeddings are computed locally by feature hashing (each word adds signed weights to 16
dimensions picked by its hash, then the vector is normalised): no model download, and texts
that share words land near each other, so nearest-neighbour queries mean something.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable

import psycopg

DIM = 384
NAMESPACE = uuid.UUID("0b5d7a1e-6c3f-4b7e-9a51-5e3d2f1c0a99")
TOPICS = ["billing", "refund", "password", "login", "shipping", "invoice", "widget", "api",
          "integration", "webhook", "export", "privacy", "account", "subscription", "upgrade",
          "downgrade", "latency", "outage", "mobile", "email", "sso", "security", "pricing",
          "trial", "cancel", "language", "theme", "colour", "domain", "analytics"]
WORDS = ["how", "do", "i", "change", "my", "the", "when", "will", "is", "can", "set", "up",
         "reset", "update", "configure", "enable", "disable", "for", "team", "customers"]


def embed(text: str, dim: int = DIM) -> list[float]:
    """Feature hashing, 16 signed dimensions per word (a word's 32-byte hash picks them), so
    vectors are dense enough for distances to differ and nearest neighbours to mean something."""
    v = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=64).digest()
        for i in range(0, 64, 4):
            idx = int.from_bytes(h[i:i + 2], "little") % dim
            weight = 0.5 + h[i + 2] / 255  # 0.5 .. 1.5
            v[idx] += weight if h[i + 3] & 1 else -weight
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / norm, 6) for x in v]


def vector_literal(v: list[float]) -> str:
    return "[" + ",".join(f"{x:g}" for x in v) + "]"


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(map(str, parts)))


def seed(conn: psycopg.Connection, tenants: int = 3, kb_per_tenant: int = 50,
         say: Callable[[str], None] = lambda m: None) -> dict[str, int]:
    """Insert the sample rows that are missing (ON CONFLICT DO NOTHING on fixed ids).
    Runs as the schema owner; returns rows inserted per table."""
    counts: dict[str, int] = {}

    def ins(table: str, rows: list[dict]) -> None:
        """COPY into a scratch table, then insert what is missing: fast and idempotent."""
        if not rows:
            return
        cols = ", ".join(rows[0])
        with conn.cursor() as cur:
            cur.execute(f"create temp table _seed (like {table} including defaults including identity) "
                        "on commit drop")
            with cur.copy(f"copy _seed ({cols}) from stdin") as copy:
                for r in rows:
                    copy.write_row(tuple(str(v) if isinstance(v, uuid.UUID) else v for v in r.values()))
            cur.execute(f"insert into {table} ({cols}) select {cols} from _seed on conflict do nothing")
            counts[table] = counts.get(table, 0) + max(cur.rowcount, 0)
            cur.execute("drop table _seed")

    for t in range(1, tenants + 1):
        rnd = random.Random(t)
        cid = _id("client", t)
        say(f"tenant {t}/{tenants}")
        with conn.transaction():
            ins("clients", [{
                "id": cid, "name": f"Tenant {t:03d}",
                "public_api_key": "pk_" + hashlib.sha256(f"pgops-seed-{t}".encode()).hexdigest()[:32],
                "allowed_domains": json.dumps([f"tenant{t}.example.com"]),
            }])
            ins("users", [{"id": _id("user", t, u), "client_id": cid,
                           "email": f"user{u}@tenant{t}.example.com",
                           "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$seed$seed",
                           "role": "owner" if u == 1 else "member"} for u in range(1, 4)])
            ins("widget_config", [{"id": _id("widget", t), "client_id": cid,
                                   "widget_name": f"Tenant {t} Support",
                                   "welcome_message": "Hi! How can we help?"}])
            ins("widget_styles", [{"id": _id("style", t), "client_id": cid,
                                   "primary_color": f"#{rnd.randrange(16**6):06x}"}])
            tag_ids = [_id("tag", t, name) for name in ("sales", "support", "bug")]
            ins("tags", [{"id": tid, "client_id": cid, "name": name}
                         for tid, name in zip(tag_ids, ("sales", "support", "bug"), strict=True)])
            convs, msgs, links = [], [], []
            for c in range(1, 6):
                conv = _id("conversation", t, c)
                convs.append({"id": conv, "client_id": cid, "visitor_id": f"visitor-{t}-{c}"})
                links.append({"conversation_id": conv, "tag_id": tag_ids[c % 3], "client_id": cid})
                for k in range(1, 5):
                    topic = rnd.choice(TOPICS)
                    msgs.append({"id": _id("message", t, c, k), "client_id": cid,
                                 "conversation_id": conv,
                                 "role": "visitor" if k % 2 else "assistant",
                                 "content": f"message {k} about {topic}"})
            ins("conversations", convs)
            ins("messages", msgs)
            ins("conversation_tags", links)
            kb = []
            for k in range(1, kb_per_tenant + 1):
                words = rnd.sample(TOPICS, 3) + rnd.sample(WORDS, 4)
                content = " ".join(words)
                kb.append({"id": _id("kb", t, k), "client_id": cid,
                           "title": f"{words[0].title()} guide {k}", "content": content,
                           "embedding": vector_literal(embed(content))})
            ins("knowledge_base", kb)
            ins("audit_events", [{"client_id": cid, "actor": "pgops seed", "action": "seed",
                                  "entity": "clients", "entity_id": str(cid)}]
                if not conn.execute("select 1 from audit_events where client_id = %s and "
                                    "action = 'seed'", (cid,)).fetchone() else [])
    return counts
