#!/usr/bin/env python3
"""Writes N contacts as NDJSON for the import benchmark: gen_contacts.py N START > file."""
import json
import random
import sys

n = int(sys.argv[1])
start = int(sys.argv[2]) if len(sys.argv) > 2 else 0
rng = random.Random(start)
tags = ["prospect", "vip", "customer", "churned", "newsletter", "trial"]
plans = ["free", "pro", "team", "enterprise"]
out = sys.stdout
for i in range(start, start + n):
    row = {
        "email": f"person{i}@example.com",
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "tags": rng.sample(tags, rng.randint(0, 3)),
        "attributes": {"plan": rng.choice(plans), "score": rng.randint(0, 100)},
    }
    if rng.random() < 0.7:
        row["attributes"]["company"] = f"Company {i % 5000}"
    if rng.random() < 0.5:
        row["phone"] = f"+1415{i:07d}"[:13]
    out.write(json.dumps(row) + "\n")
