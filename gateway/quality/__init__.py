"""Data-quality monitors: recent inputs and scores against the model card's training baseline."""
