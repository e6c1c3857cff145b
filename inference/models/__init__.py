"""Model cards, registry, safe weight loading and architectures. Importing this does not import torch."""
