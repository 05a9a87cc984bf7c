"""Search strategies, looked up by name. Each turns the one space description into proposals (ask)
and learns from scores (tell). Adding a strategy is one ``STRATEGIES.register`` call."""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from workbench.extras import extra
from workbench.lookup import Registry
from workbench.models.space import Choice, Int, Space, When, active, decode


@dataclass
class Proposal:
    id: int
    params: dict
    token: Any = None  # whatever the strategy needs back with the score


class Strategy:
    """Ask for configurations, tell their losses (lower is better; None for a failed trial).

    ``ask`` returns None when it has nothing to propose until more results come back;
    ``exhausted`` is True once it never will again (a finished grid).
    """

    exhausted = False

    def __init__(self, space: Space, *, seed: int = 0, max_trials: int = 50, batch: int = 1):
        self.space, self.seed, self.max_trials, self.batch = space, seed, max_trials, batch
        self._next = 0

    def ask(self) -> Proposal | None:
        raise NotImplementedError

    def tell(self, proposal: Proposal, loss: float | None) -> None:
        pass

    def _proposal(self, params: dict, token=None) -> Proposal:
        p = Proposal(self._next, params, token)
        self._next += 1
        return p


STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy")


class RandomSearch(Strategy):
    """Independent uniform draws over the space (log-uniform on log scales)."""

    def __init__(self, space, **kw):
        super().__init__(space, **kw)
        self.rng = np.random.default_rng(self.seed)

    def ask(self):
        return self._proposal(decode(self.space, self.rng.uniform(size=len(self.space))))


class GridSearch(Strategy):
    """scikit-learn's ParameterGrid over the space, ranges cut into ``resolution`` points (log-spaced on
    log scales). A grid larger than the trial budget is visited in a seeded random order."""

    def __init__(self, space, resolution: int = 4, **kw):
        from sklearn.model_selection import ParameterGrid

        super().__init__(space, **kw)
        plain = {k: d.grid(resolution) for k, d in space.items() if not isinstance(d, When)}
        grids = []
        parents = sorted({d.parent for d in space.values() if isinstance(d, When)})
        if parents:  # one sub-grid per value of each parent, with its children only where they apply
            for values in itertools.product(*[plain[p] for p in parents]):
                g = dict(plain) | {p: [v] for p, v in zip(parents, values)}
                fixed = dict(zip(parents, values))
                g |= {k: d.dim.grid(resolution) for k, d in space.items() if isinstance(d, When) and fixed[d.parent] in d.values}
                grids.append(g)
        else:
            grids.append(plain)
        points = list(ParameterGrid(grids))
        if len(points) > self.max_trials:
            random.Random(self.seed).shuffle(points)
        self.points = points

    def ask(self):
        if self._next >= len(self.points):
            self.exhausted = True
            return None
        return self._proposal(self.points[self._next])


class HyperoptSearch(Strategy):
    """hyperopt's TPE (or simulated annealing), asked one configuration at a time.

    After its start-up trials ``tpe.suggest`` returns one suggestion however many are asked
    for, so each proposal is inserted as a pending trial before the next is asked: every
    worker stays busy and the sequence is fixed by the seed.
    """

    def __init__(self, space, algo: str = "tpe", **kw):
        from functools import partial

        with extra("tune"):
            from hyperopt import Domain, Trials, anneal, tpe

        super().__init__(space, **kw)
        self.hspace = to_hyperopt(space)
        self.domain = Domain(lambda p: 0.0, self.hspace)
        self.trials = Trials()
        startup = min(20, max(5, self.max_trials // 4))
        self.algo = partial(tpe.suggest, n_startup_jobs=startup) if algo == "tpe" else anneal.suggest
        self.rng = np.random.default_rng(self.seed)

    def ask(self):
        from hyperopt import space_eval

        ids = self.trials.new_trial_ids(1)
        docs = self.algo(ids, self.domain, self.trials, int(self.rng.integers(2**31 - 1)))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        vals = {k: v[0] for k, v in docs[0]["misc"]["vals"].items() if v}
        return self._proposal(_flatten(self.space, space_eval(self.hspace, vals)), token=ids[0])

    def tell(self, proposal, loss):
        from hyperopt.base import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK

        for doc in self.trials._dynamic_trials:
            if doc["tid"] == proposal.token:
                doc["state"] = JOB_STATE_DONE
                doc["result"] = {"status": STATUS_FAIL} if loss is None else {"status": STATUS_OK, "loss": float(loss)}
        self.trials.refresh()


class GeneticSearch(Strategy):
    """A genetic algorithm with DEAP's operators over the space coded as numbers in [0, 1]:
    tournament selection, simulated binary crossover, polynomial mutation, and elitism (the
    best ``elite`` carry over unchanged). A generation is a multiple of the workers, so
    every worker stays busy; configurations already scored are not run again."""

    def __init__(self, space, population: int | None = None, elite: int = 2, cx_prob: float = 0.8, **kw):
        super().__init__(space, **kw)
        size = population or max(8, min(20, self.max_trials // 4))
        self.size = int(math.ceil(size / self.batch) * self.batch)
        self.elite, self.cx_prob = elite, cx_prob
        self.rng_state = random.Random(self.seed).getstate()
        self.dims = len(space)
        self.queue = [[u for u in self._uniform()] for _ in range(self.size)]
        self.generation: list = []  # (individual, loss) of the current generation
        self.waiting = 0
        self.seen: dict[str, float | None] = {}

    def ask(self):
        while self.queue:
            ind = self.queue.pop(0)
            params = decode(self.space, ind)
            key = repr(sorted(params.items()))
            if key in self.seen:  # scored before: no new trial
                self.generation.append((ind, self.seen[key]))
                continue
            self.waiting += 1
            self.seen[key] = None
            return self._proposal(params, token=(ind, key))
        if self.waiting == 0:
            self._breed()
            return self.ask() if self.queue else None
        return None

    def tell(self, proposal, loss):
        ind, key = proposal.token
        self.seen[key] = loss
        self.generation.append((ind, loss))
        self.waiting -= 1

    def _uniform(self):
        return self._with_rng(lambda: [random.random() for _ in range(self.dims)])

    def _breed(self):
        with extra("tune"):
            from deap import tools

        class Ind(list):
            fitness: float

        def breed():
            pop = []
            for ind, loss in self.generation:
                x = Ind(ind)
                x.fitness = -np.inf if loss is None else -loss
                pop.append(x)
            elite = [Ind(x) for x in tools.selBest(pop, min(self.elite, len(pop)), fit_attr="fitness")]
            children = [Ind(x) for x in tools.selTournament(pop, self.size - len(elite), tournsize=3, fit_attr="fitness")]
            for a, b in zip(children[::2], children[1::2]):
                if random.random() < self.cx_prob:
                    tools.cxSimulatedBinaryBounded(a, b, eta=15.0, low=0.0, up=1.0)
            for c in children:
                tools.mutPolynomialBounded(c, eta=20.0, low=0.0, up=1.0, indpb=1.0 / self.dims)
            return elite + children

        self.queue = [list(x) for x in self._with_rng(breed)]
        self.generation = []

    def _with_rng(self, fn):
        # DEAP draws from the global `random` module: give it this search's own stream, then put the global one back
        outer = random.getstate()
        random.setstate(self.rng_state)
        try:
            return fn()
        finally:
            self.rng_state = random.getstate()
            random.setstate(outer)


def to_hyperopt(space: Space) -> dict:
    """The space as hyperopt expressions; a parent choice becomes a branch holding its conditional children."""
    with extra("tune"):
        from hyperopt import hp

    def expr(label, dim):
        if isinstance(dim, Choice):
            return hp.choice(label, list(dim.options))
        if isinstance(dim, Int):
            lo, hi = dim.low - 0.499, dim.high + 0.499
            if dim.log:
                return hp.qloguniform(label, math.log(dim.low), math.log(dim.high), 1)
            return hp.quniform(label, lo, hi, 1)
        if dim.log:
            return hp.loguniform(label, math.log(dim.low), math.log(dim.high))
        return hp.uniform(label, dim.low, dim.high)

    children = {k: d for k, d in space.items() if isinstance(d, When)}
    out = {}
    for name, dim in space.items():
        if isinstance(dim, When):
            continue
        kids = {k: d for k, d in children.items() if d.parent == name}
        if kids:
            out[name] = hp.choice(name, [{"__value": v, **{k: expr(f"{k}|{name}={v!r}", d.dim) for k, d in kids.items() if v in d.values}}
                                         for v in dim.options])
        else:
            out[name] = expr(name, dim)
    return out


def _flatten(space: Space, sample: dict) -> dict:
    params = {}
    for k, v in sample.items():
        if isinstance(v, dict) and "__value" in v:
            params[k] = v["__value"]
            params.update({kk: vv for kk, vv in v.items() if kk != "__value"})
        else:
            params[k] = v
    for k, d in space.items():
        inner = d.dim if isinstance(d, When) else d
        if isinstance(inner, Int) and k in params:
            params[k] = int(min(inner.high, max(inner.low, round(params[k]))))
    return active(space, params)


STRATEGIES.register("grid", GridSearch)
STRATEGIES.register("random", RandomSearch)
STRATEGIES.register("tpe", lambda space, **kw: HyperoptSearch(space, algo="tpe", **kw))
STRATEGIES.register("anneal", lambda space, **kw: HyperoptSearch(space, algo="anneal", **kw))
STRATEGIES.register("genetic", GeneticSearch)
