"""Optional experiment tracking: a run's settings, its epochs and its test metrics sent to MLflow or
TensorBoard as well as to its own folder. Each library is imported only when asked for
(`pip install 'mnistlab[tracking]'`).

A logger has two methods: `epoch(row)` after every epoch (a history row, see train.py) and
`finish(metrics)` at the end (test metrics, or None when the run was not evaluated).
"""

import os
from pathlib import Path

from .errors import MnistlabError

DEFAULT_MLFLOW_URI = "sqlite:///runs/mlflow.db"
EXPERIMENT = "mnistlab"
RUN_TAG = "mnistlab.run_folder"  # ties an MLflow run to its run folder, so that --resume logs into it


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MnistlabError(f"this needs {package}: pip install 'mnistlab[tracking]'") from None


def _scalars(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class MLflowLog:
    """One MLflow run per run folder, in experiment "mnistlab": the config as parameters, every history
    column as a metric stepped by epoch, the test metrics, and the run's report and metrics as artifacts."""

    def __init__(self, uri: str, run_dir, config: dict):
        # MLflow retries an unreachable server for minutes by default; say so in seconds (unless the user set it).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        mlflow = _require("mlflow", "MLflow")
        self.run_dir = Path(run_dir)
        artifacts = None
        if uri.startswith("sqlite:///"):  # SQLite makes the file, not its folder
            folder = Path(uri.removeprefix("sqlite:///")).parent
            folder.mkdir(parents=True, exist_ok=True)
            artifacts = (folder / "mlartifacts").resolve().as_uri()  # beside the store, not ./mlruns
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(EXPERIMENT, artifacts)
            folder = str(self.run_dir.resolve())
            found = self.client.search_runs([exp_id], filter_string=f"tags.`{RUN_TAG}` = '{folder}'", max_results=1)
        except Exception as e:  # MLflow raises several unrelated types for a bad URI or an unreachable server
            raise MnistlabError(f"MLflow at {uri}: {str(e).strip().splitlines()[0]}") from None
        if found:  # a resumed run continues its MLflow run
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(exp_id, run_name=self.run_dir.name, tags={RUN_TAG: folder})
            self.run_id = run.info.run_id
            params = {k: str(v) for k, v in config.items()}
            self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])

    def epoch(self, row: dict):
        for key, value in _scalars(row).items():
            if key != "epoch":
                self.client.log_metric(self.run_id, key, value, step=row["epoch"])

    def finish(self, metrics: dict | None):
        for key, value in _scalars(metrics or {}).items():
            self.client.log_metric(self.run_id, key, value)
        from .runfolder import CURVES, METRICS, REPORT

        for name in (METRICS, REPORT, CURVES, "confusion_matrix.png"):
            if (self.run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id)


class TensorBoardLog:
    """Event files in RUN/tensorboard: `tensorboard --logdir runs` shows every run's curves side by side."""

    def __init__(self, run_dir, config: dict):
        _require("tensorboard", "TensorBoard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in config.items()))

    def epoch(self, row: dict):
        for key, value in _scalars(row).items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def finish(self, metrics: dict | None):
        for key, value in _scalars(metrics or {}).items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()
