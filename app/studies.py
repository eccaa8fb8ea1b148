"""The Optuna side of sweeps. Each sweep's study lives in zoolab's own database — Optuna's
RDBStorage on the same URL, in Optuna's own tables, which zoolab's migrations leave alone
(app/migrate.py) — so the sampler's and the pruner's memory survive restarts with the runs.

Who does what (app/sweeper.py drives it):
- the server makes a sweep's study and its trials: a grid's or a random sweep's all at once,
  a tpe sweep's a few at a time, asking the TPE sampler (ask/tell interface);
- the worker training a trial reports each epoch's test accuracy as an intermediate value and
  asks the pruner whether to stop it (`TrialReport`); it tells the study how the trial ended;
- the server tells whatever a worker could not (one killed at the wrong moment). Telling is
  idempotent: a trial the study already counts is never counted again.

The objective is a trial's best test accuracy (maximised), as in the runs table."""

import logging
import sqlite3
import statistics
import threading
import warnings
from collections.abc import Callable

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy.engine import Engine, make_url

from app import migrate
from app.db import SQLITE_BUSY_TIMEOUT_MS
from app.space import Dimension, Value

log = logging.getLogger("zoolab.studies")
optuna.logging.set_verbosity(optuna.logging.WARNING)
# constant_liar (TPE with trials still running) is marked experimental; it is what a queue of
# several trials ahead needs.
warnings.filterwarnings("ignore", category=ExperimentalWarning, module="optuna")

PRUNERS = ("none", "median", "halving")
# The median pruner judges a trial once this many trials finished: a median of fewer is noise.
MEDIAN_STARTUP_TRIALS = 3
HALVING_REDUCTION = 3   # successive halving keeps the best third at each rung (epochs 1, 3, 9, ...)
# PED-ANOVA is Optuna's default evaluator and needs nothing more than Optuna; fANOVA and
# mean-decrease-impurity need scikit-learn's random forests.
IMPORTANCE_EVALUATOR = "PED-ANOVA"
_storage_lock = threading.Lock()
_storages: dict[str, RDBStorage] = {}


class Pruned(Exception):
    """The pruner stopped a trial; the message is the reason the run keeps."""


def _open(url: str) -> RDBStorage:
    kwargs = {}
    if url.startswith("sqlite"):
        path = make_url(url).database

        def connect() -> sqlite3.Connection:
            # like app/db.py: wait for the write lock rather than fail; WAL makes NORMAL safe
            connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            connection.execute("PRAGMA synchronous=NORMAL")
            return connection
        kwargs = {"creator": connect}
    else:
        kwargs = {"pool_pre_ping": True}
    # Optuna's schema revision is in `alembic_version`, zoolab's in its own table (app/migrate.py):
    # Optuna checks its own, and says so if the installed Optuna needs its schema upgraded.
    return RDBStorage(url, engine_kwargs=kwargs)


def storage(engine: Engine) -> RDBStorage:
    """The Optuna storage on `engine`'s database, opened once per process. The database must
    already have zoolab's schema (the server makes it at start)."""
    url = engine.url.render_as_string(hide_password=False)
    with _storage_lock:  # two first requests at once would both create Optuna's tables
        if url not in _storages:
            if migrate.current(engine) is None:
                raise migrate.SchemaError("the database has no zoolab schema yet: start the server or run "
                                          "`zoolab db upgrade` first")
            _storages[url] = _open(url)
        return _storages[url]


def distributions(dims: list[Dimension]) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for d in dims:
        if d.kind == "choice":
            out[d.name] = CategoricalDistribution(d.choices)
        elif d.kind == "int":
            out[d.name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            out[d.name] = FloatDistribution(d.low, d.high, log=d.log)
    return out


def sampler(kind: str, seed: int, budget: int, asked: int) -> optuna.samplers.BaseSampler:
    """The sampler a sweep asks with. Only tpe asks (grid and random points are made up front);
    it is rebuilt for every ask, seeded by the trials asked so far so that its random start-up
    phase never repeats a point. constant_liar: trials still running count as poor, so the
    trials queued ahead of the workers spread out."""
    if kind != "tpe":
        return optuna.samplers.RandomSampler(seed=seed + asked)
    return optuna.samplers.TPESampler(seed=seed + asked, n_startup_trials=min(10, max(3, budget // 4)),
                                      constant_liar=True)


def pruner(kind: str) -> optuna.pruners.BasePruner:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=HALVING_REDUCTION)
    return optuna.pruners.NopPruner()


def create(engine: Engine, name: str, dims: list[Dimension], points: list[dict[str, Value]]) -> list[int]:
    """A new study named `name`, holding one running trial per point; their numbers."""
    study = optuna.create_study(study_name=name, storage=storage(engine), direction="maximize")
    space = distributions(dims)
    for point in points:
        study.add_trial(create_trial(state=TrialState.RUNNING, params=point, distributions=space))
    return [t.number for t in study.get_trials(deepcopy=False)]


def load(engine: Engine, name: str, *, sampler_: optuna.samplers.BaseSampler | None = None,
         pruner_: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage(engine), sampler=sampler_, pruner=pruner_)


def ask(study: optuna.Study, dims: list[Dimension]) -> tuple[int, dict[str, Value]]:
    trial = study.ask(distributions(dims))
    return trial.number, trial.params


RUN_ID = "run_id"  # a trial's user attribute: the run it was queued as


def mark_queued(engine: Engine, study_name: str, number: int, run_id: int) -> None:
    store = storage(engine)
    trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study_name), number)
    store.set_trial_user_attr(trial_id, RUN_ID, run_id)


OUTCOMES = {"finished": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def tell(study: optuna.Study, number: int, status: str, best_test_acc: float | None) -> None:
    """Tell the study how trial `number` ended (a run's status), unless it already knows: a
    finished run is COMPLETE with its best test accuracy, a pruned one PRUNED (Optuna keeps its
    last intermediate value), anything else FAIL."""
    state = OUTCOMES.get(status, TrialState.FAIL)
    if state == TrialState.COMPLETE and best_test_acc is None:
        state = TrialState.FAIL
    try:
        study.tell(number, best_test_acc if state == TrialState.COMPLETE else None, state=state,
                   skip_if_finished=True)
    except UpdateFinishedTrialError:
        pass  # another process told it between our look and our write: counted once all the same


def trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False)


def importances(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    """The parameters' importances for the objective over the finished trials, or {} and why not."""
    complete = [t for t in trials(study) if t.state == TrialState.COMPLETE]
    if len(complete) < 2:
        return {}, f"needs 2 finished trials, has {len(complete)}"
    varied = [name for name in complete[0].params if len({repr(t.params.get(name)) for t in complete}) > 1]
    if not varied:
        return {}, "no parameter varies over the finished trials"
    try:
        found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), params=varied)
    except (ValueError, RuntimeError) as e:  # e.g. values too alike to separate
        return {}, f"{IMPORTANCE_EVALUATOR} could not tell: {e}"
    return {name: float(value) for name, value in found.items()}, None


class TrialReport:
    """The worker's side of one trial: each epoch's test accuracy goes to the study, and the
    pruner may stop the trial (`Pruned`) — never at its last epoch, which ends it anyway."""

    def __init__(self, engine: Engine, study_name: str, number: int, pruner_kind: str, epochs: int):
        self.study = load(engine, study_name, pruner_=pruner(pruner_kind))
        self.store = storage(engine)
        self.trial_id = self.store.get_trial_id_from_study_id_trial_number(
            self.store.get_study_id_from_name(study_name), number)
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.pruner_kind, self.epochs = pruner_kind, epochs

    def catch_up(self, test_acc_by_epoch: dict[int, float | None]) -> None:
        """Report finished epochs the study lacks (a resumed trial: its worker died in between)."""
        known = self.store.get_trial(self.trial_id).intermediate_values
        for epoch, test_acc in sorted(test_acc_by_epoch.items()):
            if epoch not in known and test_acc is not None:
                try:
                    self.trial.report(test_acc, epoch)
                except UpdateFinishedTrialError:
                    return

    def epoch(self, epoch: int, test_acc: float | None) -> None:
        if test_acc is None:
            return
        try:
            self.trial.report(test_acc, epoch)
            stop = epoch < self.epochs and self.trial.should_prune()
        except UpdateFinishedTrialError:  # the study already closed this trial (a retried run)
            return
        if stop:
            raise Pruned(self._reason(epoch, test_acc))

    def _reason(self, epoch: int, test_acc: float) -> str:
        head = f"pruned after epoch {epoch} of {self.epochs}: test accuracy {test_acc:.2%}"
        if self.pruner_kind == "median":
            seen = [t.intermediate_values[epoch] for t in self.study.get_trials(deepcopy=False, states=(
                TrialState.COMPLETE,)) if epoch in t.intermediate_values]
            if seen:
                return (f"{head}, below the median {statistics.median(seen):.2%} of {len(seen)} finished trials "
                        "at that epoch")
        if self.pruner_kind == "halving":
            return f"{head}, not in the best 1/{HALVING_REDUCTION} of the trials at that epoch (successive halving)"
        return head


def safely(what: str, action: Callable[[], None]) -> None:
    """Run a study update that must not take its caller down (the server's loop catches up later)."""
    try:
        action()
    except Exception:
        log.exception("%s failed; the server's sweeper will catch up", what)
