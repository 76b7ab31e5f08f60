"""Training scripts for Face Lab's own heads (run as ``python -m training.train_emotion``)."""
