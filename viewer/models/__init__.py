"""Qt-free, evented viewer state: what is open, where the cursor is, how it is displayed."""
