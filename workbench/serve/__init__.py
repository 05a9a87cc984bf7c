"""The prediction service: FastAPI app factory, compiled row plans, V2 protocol, metrics."""
from workbench.serve.app import CONFIG_ENV, ServeConfig, create_app
from workbench.serve.models import ModelStore, Served, load_source

__all__ = ["ServeConfig", "create_app", "ModelStore", "Served", "load_source", "serve"]


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          graceful_s: float = 30.0) -> None:
    """Run the service with uvicorn (blocking); the config reaches every worker process through the environment."""
    import os

    import uvicorn

    os.environ[CONFIG_ENV] = config.to_env()
    uvicorn.run("workbench.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=False, timeout_graceful_shutdown=graceful_s)
