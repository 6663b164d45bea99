# pgops: the two commands that matter are `make up` and `make test` (see README.md).
.PHONY: up test down bootstrap lint bench bench-backup bench-rto bench-ha bench-endpoint bench-tenant bench-tuning unit lock

up: bootstrap
	.venv/bin/pgops up

test: bootstrap
	.venv/bin/pytest -q

unit: bootstrap
	.venv/bin/pytest -q tests/unit

down: bootstrap
	.venv/bin/pgops lab down

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: bootstrap
	.venv/bin/python bench/deploy.py

bench-backup: bootstrap
	.venv/bin/python bench/backup.py

bench-rto: bootstrap
	.venv/bin/python bench/pitr_rto.py

bench-ha: bootstrap
	.venv/bin/python bench/ha.py

bench-endpoint: bootstrap
	.venv/bin/python bench/endpoint.py

bench-tenant: bootstrap
	.venv/bin/python bench/tenant.py

bench-tuning: bootstrap
	.venv/bin/python bench/tuning.py --ablate

bootstrap:
	@scripts/bootstrap.sh

# Re-pin dependencies after changing pyproject.toml.
lock:
	python3 -m venv /tmp/pgops-lock && /tmp/pgops-lock/bin/pip install -q -e '.[dev]' \
	  && /tmp/pgops-lock/bin/pip freeze --exclude-editable | grep -v '^pgops' > requirements.lock
