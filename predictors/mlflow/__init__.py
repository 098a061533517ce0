"""From training to serving through MLflow (the `mlflow` extra).

- tracking.py  the tracking server and registry: URIs, the client, resolving
               `models:/NAME@ALIAS` and `models:/NAME/VERSION`
- train.py     `modelplane train`: train a bundled recipe, log and register it
- importer.py  `modelplane store import`: export a registered version into the store
- canary.py    `modelplane canary-values`: champion/challenger aliases as Helm values

mlflow itself is imported inside functions: importing this package costs nothing
for commands that do not use MLflow.
"""
