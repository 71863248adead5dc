"""`mnistlab sweep` (issue 17): real Optuna studies of tiny trials on real MNIST, SQLite and PostgreSQL,
two workers on one study, Ctrl-C then resume, a pruned trial stopped early, and the one-line errors."""

import glob
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

import mnistlab as ml  # noqa: E402
from mnistlab.cli import main  # noqa: E402
from mnistlab.config import TrainConfig  # noqa: E402
from mnistlab.sweep import open_storage  # noqa: E402

from conftest import ROOT, free_socket  # noqa: E402

# Trials of a few seconds: 300 training images, 1,200 validation images, fast-cnn at width 8.
TINY = ["--recipe", "balanced", "--train-limit", "300", "--val-fraction", "0.02", "--epochs", "1",
        "--model-arg", "width=8"]


def trials(storage: str, study: str) -> list:
    return optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials()


def sweep_process(cwd: Path, mnist_dir, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "mnistlab", "sweep", *args, "--data-dir", str(mnist_dir)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sweep_sqlite_show_and_train_best(tmp_path, monkeypatch, mnist_dir, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *TINY, "--trials", "3", "--data-dir", str(mnist_dir)]) == 0
    done = trials("sqlite:///runs/sweeps.db", "balanced")
    assert [t.number for t in done] == [0, 1, 2]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)
    # The default space: the recipe's lr, weight decay and augmentation (width is fixed here), in range.
    assert set(done[0].params) == {"lr", "weight_decay", "rotate", "scale", "translate"}
    assert all(0.02 <= t.params["lr"] <= 0.6 and 0 <= t.params["rotate"] <= 16 for t in done)
    for t in done:  # each trial a run folder of its own, scored by its kept epoch's validation accuracy
        run = ml.Run(tmp_path / "runs/sweep-balanced" / f"trial-{t.number}")
        assert run.config["lr"] == t.params["lr"] and run.config["train_limit"] == 300
        assert t.value == pytest.approx(1 - run.best_epoch["val_accuracy"])
        assert run.metrics is None  # the test set plays no part in choosing
    capsys.readouterr()

    assert main(["sweep", "--show", "balanced", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    best = min((t for t in done if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    best_run = ml.Run(tmp_path / "runs/sweep-balanced" / f"trial-{best.number}")
    assert f"best: trial {best.number}" in out
    assert best_run.metrics["n"] == 10_000 and f"{best_run.metrics['test_accuracy']:.2%}" in out
    assert sum((tmp_path / "runs/sweep-balanced" / f"trial-{t.number}/metrics.json").exists() for t in done) == 1
    page = (tmp_path / "runs/sweep-balanced/sweep.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "<script" not in page and "src=\"http" not in page

    # The best settings, trained again with a command-line option over them.
    best_json = tmp_path / "runs/sweep-balanced/best.json"
    assert TrainConfig.from_dict(json.loads(best_json.read_text())).lr == best.params["lr"]
    assert main(["train", "--config", str(best_json), "--seed", "1", "--no-evaluate", "--out", "again",
                 "--data-dir", str(mnist_dir)]) == 0
    again = ml.Run(tmp_path / "again").config
    assert again == {**json.loads(best_json.read_text()), "seed": 1}


def test_two_workers_share_a_sqlite_study(tmp_path, mnist_dir):
    workers = [sweep_process(tmp_path, mnist_dir, *TINY, "--trials", "4", "--study", "two") for _ in range(2)]
    for w in workers:
        assert w.wait(300) == 0, w.stderr.read()
    every = trials(f"sqlite:///{tmp_path}/runs/sweeps.db", "two")
    # Both workers may start a trial at the same moment when one is missing: the later one stands down,
    # closed as failed and marked surplus.
    surplus = [t for t in every if t.user_attrs.get("surplus")]
    assert all(t.state == TrialState.FAIL for t in surplus)
    done = [t for t in every if t not in surplus]
    assert len(done) == 4 and len({t.number for t in done}) == 4  # as many as asked, none run twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both workers took trials
    assert sorted(p.name for p in (tmp_path / "runs/sweep-two").iterdir()) == sorted(f"trial-{t.number}" for t in done)


def test_ctrl_c_marks_the_trial_failed_and_a_rerun_continues(tmp_path, mnist_dir):
    # Ctrl-C once the trial's first epoch is done: its three other epochs are still to come, however
    # fast the machine.
    args = [*TINY, "--train-limit", "3000", "--epochs", "4", "--trials", "1", "--study", "int"]
    worker = sweep_process(tmp_path, mnist_dir, *args)
    first_epoch = tmp_path / "runs/sweep-int/trial-0/history.json"  # written at the end of each epoch
    deadline = time.time() + 120
    while not first_epoch.exists() and worker.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(120) == 130, worker.stderr.read()
    err = worker.stderr.read()
    assert err.strip().splitlines()[-1].startswith("mnistlab: interrupted; the trial under way is marked failed")
    assert "Traceback" not in err
    assert [t.state for t in trials(f"sqlite:///{tmp_path}/runs/sweeps.db", "int")] == [TrialState.FAIL]

    rerun = sweep_process(tmp_path, mnist_dir, *args)
    assert rerun.wait(300) == 0, rerun.stderr.read()
    assert "0 of 1 trials so far" in rerun.stdout.read()
    states = [t.state for t in trials(f"sqlite:///{tmp_path}/runs/sweeps.db", "int")]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_killed_worker_s_trial_is_failed_and_retried(tmp_path, mnist, mnist_dir, monkeypatch):
    search = importlib.import_module("mnistlab.sweep")  # the module; ml.sweep is the API function
    worker = sweep_process(tmp_path, mnist_dir, *TINY, "--trials", "1", "--study", "kill")
    started = tmp_path / "runs/sweep-kill/trial-0/config.json"
    deadline = time.time() + 120
    while not started.exists() and worker.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    worker.kill()  # SIGKILL: no chance to tell the study anything
    worker.wait()
    storage = f"sqlite:///{tmp_path}/runs/sweeps.db"
    assert [t.state for t in trials(storage, "kill")] == [TrialState.RUNNING]
    # The next worker finds its heartbeat stale (grace period shortened here from 4 x 30 s), fails it and
    # runs its settings again.
    monkeypatch.setattr(search, "HEARTBEAT", 1)
    time.sleep(4.5)
    ml.sweep("balanced", trials=1, study="kill", storage=storage, dir=tmp_path / "runs", data=mnist, quiet=True,
             train_limit=300, val_fraction=0.02, epochs=1, model_args={"width": 8})
    killed, retried = trials(storage, "kill")
    assert killed.state == TrialState.FAIL and retried.state == TrialState.COMPLETE
    assert retried.params == killed.params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() by hand, not through optimize()
def test_a_trial_beyond_the_count_stands_down(tmp_path):
    """Two workers that both saw one trial missing both start one; the later number runs nothing."""
    search = importlib.import_module("mnistlab.sweep")
    base = TrainConfig.from_recipe("balanced")
    space = search.search_space(base)
    study = search.open_study("race", search.open_storage(f"sqlite:///{tmp_path}/s.db"), {"config": {}, "space": {}})
    first, second = study.ask(), study.ask()  # both running: the study asked for 1
    with pytest.raises(search.Surplus):
        search.objective(base, space, tmp_path, None, trials=1)(second)
    assert not (tmp_path / "trial-1").exists()
    study.tell(first, 0.5)
    study.tell(second, state=TrialState.FAIL)
    assert [r["number"] for r in search.summary(study)["trials"]] == [0]


def test_a_pruned_trial_stops_early(tmp_path, mnist):
    import mnistlab.sweep  # noqa: F401  (the module does not hide the API function of the same name)

    assert ml.sweep.__module__ == "mnistlab.api"
    s = ml.sweep("balanced", trials=1, study="prune", storage=f"sqlite:///{tmp_path}/s.db", dir=tmp_path,
                 data=mnist, quiet=True, pruner=optuna.pruners.ThresholdPruner(upper=0.0),  # every loss is above 0
                 train_limit=300, val_fraction=0.02, epochs=3, model_args={"width": 8})
    assert s["counts"]["pruned"] == 1 and s["best"] is None
    run = ml.Run(tmp_path / "sweep-prune/trial-0")
    assert run.config["epochs"] == 3 and len(run.history) == 1  # stopped after the first of its three epochs
    t = trials(f"sqlite:///{tmp_path}/s.db", "prune")[0]
    assert t.intermediate_values == {1: pytest.approx(run.history[0]["val_loss"])}


@pytest.mark.parametrize("args, message", [
    (["--param", "lr=1e-2:1e-4"], "the low end must be below the high end"),
    (["--param", "lr=fast:1"], "lr must be a finite number"),
    (["--param", "lr=1e-4:1e-2:linear"], "expected NAME=LOW:HIGH[:log]"),
    (["--param", "nosuch=1:2"], "unknown option 'nosuch'"),
    (["--param", "width=0,8"], "width must be a whole number at least 1"),
    (["--param", "optimizer=adam"], "two choices or more"),
    (["--param", "lr", "--lr", "0.1"], "also fixed by --lr"),
    (["--param", "shear"], "no default range"),
    (["--param", "model=fast-cnn,nosuch"], "unknown model 'nosuch'"),
    (["--timeout", "soon"], "--timeout must be a duration"),
])
def test_bad_param_is_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--recipe", "balanced", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_unreachable_storage_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with free_socket() as sock:  # a port nobody listens on
        port = sock.getsockname()[1]
    for url, message in ((f"postgresql://mnistlab@127.0.0.1:{port}/sweeps", "Connection refused"),
                         ("nosuch://host/db", "storage nosuch://host/db: ")):
        assert main(["sweep", "--recipe", "balanced", "--storage", url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"mnistlab: error: storage {url}") and message in err, err
    assert main(["sweep", "--show", "nosuch", "--storage", f"sqlite:///{tmp_path}/s.db"]) == 1
    assert capsys.readouterr().err == "mnistlab: error: no study 'nosuch' in this storage; it has: none\n"


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster from Debian's packages on a free loopback port, as a non-root user."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is needed: pip install 'mnistlab[sweep]'")
    bindir = Path(initdb[-1]).parent
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="mnistlab-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    with free_socket() as sock:
        port = sock.getsockname()[1]
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "mnistlab",
                              "--auth=trust"], **quiet)
    subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                              "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], **quiet)
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="mnistlab", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE sweeps")
        conn.close()
        yield f"postgresql://mnistlab@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres, tmp_path, mnist_dir):
    # Two folders stand for two machines: each writes its own trials' run folders.
    machines = [tmp_path / "a", tmp_path / "b"]
    workers = []
    for m in machines:
        m.mkdir()
        workers.append(sweep_process(m, mnist_dir, *TINY, "--trials", "3", "--study", "pg", "--storage", postgres))
    for w in workers:
        assert w.wait(300) == 0, w.stderr.read()
    everything = trials(postgres, "pg")
    done = [t for t in everything if not t.user_attrs.get("surplus")]  # a worker that lost the race for the last
    assert len(done) == 3, [(t.number, t.state, t.user_attrs) for t in everything]  # place ran nothing
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)
    assert len({t.user_attrs["pid"] for t in done}) == 2
    folders = sorted(p.name for m in machines for p in (m / "runs/sweep-pg").iterdir())
    assert folders == sorted(f"trial-{t.number}" for t in done)


def test_train_config_file_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "nosuch.json"]) == 1
    assert capsys.readouterr().err == "mnistlab: error: nosuch.json: no such config file\n"
    Path("bad.json").write_text('{"lr": -1}')
    assert main(["train", "--config", "bad.json"]) == 2
    assert "bad.json: lr must be a finite number above 0" in capsys.readouterr().err
    assert main(["train", "--config", "bad.json", "--recipe", "fast"]) == 2
    assert capsys.readouterr().err == "mnistlab: error: give --recipe or --config, not both\n"
