"""The web-serving layer between Gradio and `pipeline/`: what a request may name, how big it may be, and
the Gradio workarounds the pinned version needs. app.py wires the UI; nothing here holds a visitor's data."""

import os

# Gradio reads this when it is imported: analytics off unless the operator opted in (app.py imports
# `serving` before `gradio`). Writing a default for Gradio is not a Face Lab setting, so it is not in Settings.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
