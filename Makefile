# RoadMesh: the README's commands. Each installs what is missing first (scripts/bootstrap.sh).
.PHONY: demo test check format clean

demo:
	scripts/bootstrap.sh demo
	.venv/bin/roadmesh demo

test:
	scripts/test.sh

check:
	scripts/bootstrap.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy protocol broker edge vision ingest rewards contracts webapp sim roadmesh bench

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	rm -rf .run
