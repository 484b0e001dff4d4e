"""The FastAPI serving layer: `serving.app.create_app` builds the app, `serving.app.run` serves it."""
