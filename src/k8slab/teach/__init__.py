"""Teaching: the trace explanation and the tutorial's walkthrough."""
