"""Qt widgets. They show state and emit user intent; they never call the engine."""
