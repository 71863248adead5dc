"""The one exception type for mistakes a user can make; the CLI prints it as a single line."""


class MnistlabError(Exception):
    """A user-facing error: a missing or corrupt file, an unknown name, a bad option."""


# The pip extra (see pyproject.toml) that brings each optional package the code imports.
EXTRAS = {"fastapi": "serve", "starlette": "serve", "uvicorn": "serve", "multipart": "serve", "anyio": "serve",
          "prometheus_client": "serve", "onnx": "onnx", "onnxscript": "onnx", "onnx_ir": "onnx",
          "onnxruntime": "onnx", "h5py": "keras", "mlflow": "tracking", "tensorboard": "tracking"}


def missing_extra(error: ModuleNotFoundError) -> str:
    """One line for an import that failed: which pip extra to install, when the package is one of ours."""
    top = (error.name or "").split(".")[0]
    if top in EXTRAS:
        return (f"this needs the optional package {top!r}: pip install 'mnistlab[{EXTRAS[top]}]' "
                f"(in a checkout: pip install -e '.[{EXTRAS[top]}]')")
    return f"a package mnistlab needs is missing: {top or error}; reinstall mnistlab"
