"""The deep-learning pipeline: dataset preparation, training, evaluation. Headless; torch imported lazily."""
