# The two commands of the README, and the steps they share. Each creates .venv when needed.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: demo test bench bench-serving lab dashboard clean

demo: $(VENV)/.installed  ## the whole pipeline on the built-in demo data, with reports and a dashboard
	$(BIN)/workbench run --data demo --target churn

test: $(VENV)/.installed  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed  ## accuracy and time against LightGBM defaults on ../shared/datasets
	$(BIN)/python benchmarks/accuracy.py

bench-serving: $(VENV)/.installed  ## HTTP cost of a prediction against the floor and mlflow models serve (needs wrk)
	@command -v wrk >/dev/null || { echo "benchmarks/serving.py needs wrk: sudo apt-get install -y wrk"; exit 1; }
	$(BIN)/python benchmarks/serving.py

lab: $(VENV)/.installed  ## JupyterLab on the notebooks (the panels live in explore.ipynb)
	@if [ "$$(id -u)" = 0 ]; then echo "running as root: JupyterLab refuses root without --allow-root, so it is added (a normal user needs neither)"; fi
	$(BIN)/jupyter lab workbench/notebooks/$(if $(filter 0,$(shell id -u)), --allow-root)

dashboard: $(VENV)/.installed  ## the results dashboard (Voila) of the newest run
	$(BIN)/workbench dashboard

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $@

clean:
	rm -rf $(VENV) .workbench reports/*/ .pytest_cache
