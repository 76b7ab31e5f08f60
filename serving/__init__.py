"""The web-serving layer between Gradio and `pipeline/`: what a request may name, how big it may be, and
the Gradio workarounds the pinned version needs. app.py wires the UI; nothing here holds a visitor's data."""
