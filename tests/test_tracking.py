"""Optional tracking: a real run logged to MLflow (a SQLite store) and to TensorBoard event files,
read back with each library's own reader."""

import json
import sys

import pytest

from mnistlab.cli import main

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def test_mlflow_and_tensorboard_log_a_run_and_its_resume(tmp_path, mnist_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"  # the folder does not exist yet
    run = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir), "--out", str(run), "--mlflow", uri]
    assert main(["train", "--recipe", "fast", "--train-limit", "1000", "--val-fraction", "0.02", "--epochs", "2",
                 "--tensorboard", *common]) == 0
    assert main(["train", "--resume", "--epochs", "3", *common]) == 0

    client = mlflow.MlflowClient(tracking_uri=uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("mnistlab").experiment_id])
    assert logged.info.run_name == "run" and logged.info.status == "FINISHED"
    assert logged.data.params["recipe"] == "fast" and logged.data.params["train_limit"] == "1000"
    history = json.loads((run / "history.json").read_text())
    curve = client.get_metric_history(logged.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in curve] == [(r["epoch"], pytest.approx(r["val_accuracy"])) for r in history]
    metrics = json.loads((run / "metrics.json").read_text())
    assert logged.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert {"metrics.json", "report.html"} <= {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert (tmp_path / "store" / "mlartifacts").is_dir()  # beside the store, not in the working folder

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val_accuracy")] == [1, 2]  # the resume did not ask for TensorBoard
    assert events.Scalars("loss")[0].value == pytest.approx(history[0]["loss"])


def test_tracking_errors_are_one_line(tmp_path, mnist_dir, capsys, monkeypatch):
    args = ["train", "--epochs", "1", "--train-limit", "100", "--data-dir", str(mnist_dir)]
    assert main([*args, "--out", str(tmp_path / "a"), "--mlflow", "nosuchscheme://x"]) == 1
    assert "MLflow at nosuchscheme://x" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main([*args, "--out", str(tmp_path / "b"), "--mlflow"]) == 1
    assert "pip install 'mnistlab[tracking]'" in capsys.readouterr().err
