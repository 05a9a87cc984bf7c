"""The MLflow pyfunc flavour of a workbench model, logged as code (no pickle): it loads the safe model files."""
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from workbench.registry.package import load_package


class WorkbenchModel(PythonModel):
    def load_context(self, context):
        self.model = load_package(context.artifacts["model"]).model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict_frame(model_input)


mlflow.models.set_model(WorkbenchModel())
