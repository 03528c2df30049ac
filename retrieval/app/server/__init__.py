"""The FastAPI server behind `retr serve`."""
