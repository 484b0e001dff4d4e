"""The MLflow model logged from code (models-from-code): this file is copied into each logged model and run
when the model is loaded, so the model holds no pickled Python object, only this code and the bundle file
(`TriageBundle`, pickled by the same pinned versions that load it)."""

from mlflow.models import set_model

from models.pyfunc_model import TriagePyfunc

set_model(TriagePyfunc())
